/**
 * The fetch on node:http/node:https that the agent and the controller use. It lives in the
 * SDK, which loads it itself for a CA to trust (`VAULT_CACERT`), so the SDK package ships it.
 */
export { createNodeFetch, type NodeFetch, type NodeFetchOptions } from '../sdk/node-fetch.js';
