// Entry point 'tiercache/status': the live status page (HTML and its JSON feed) as a (req, res) handler.
export { statusPage, STATUS_CSP, type StatusFeed, type StatusPageHandler, type StatusPageOptions } from './observe/status-page.js';
