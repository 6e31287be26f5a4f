// src/keys: pure functions from a request to its key, TTL rule and tags. No I/O.
export { parseDuration, type Duration } from './duration.js';
export { normalizeRoutePath, originForm, pathOf, parentPath } from './path-normalize.js';
export { RouteTable, resolveRule, resolveHeaderList, type RouteRule, type RouteRuleInput, type RouteRuleOptions } from './route-table.js';
export { buildRequestKey, canonicalQuery, methodClass, normalizedHeaderValue, REQUEST_KEY, variantKey, MAX_KEY_LENGTH, type RequestKeyInput } from './request-key.js';
export { escapeKeyComponent } from './key-escape.js';
export { ACCESS_TOKEN, hasAccessToken, MAX_QUERY_PARTS } from './canonical-query.js';
export { implicitTags, keyTag, pathTags, prefixTag, prefixTags, tagPath, userTag, wellFormedTag, MAX_PATH_TAG_DEPTH } from './tags.js';
