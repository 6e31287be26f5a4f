// 'tiercache/node': the front door, for any node (req, res) handler.
export { front, type FrontOptions, type NodeRequestHandler } from './middleware/node.js';
