/**
 * The MCP server (and the broker) act for one agent with that agent's own token. A person's
 * token, a system token or one carrying the root policy would let the agent act with the
 * person's rights and be audited as them, so they are refused before anything is served.
 */
import type { TokenInfo } from '../sdk/index.js';

export class ServingIdentityError extends Error {
  override name = 'ServingIdentityError';
}

/** Throws unless `self` is a token fit to serve an agent with. */
export function requireAgentToken(self: TokenInfo, server: string): void {
  const who = `${self.identity.type} "${self.identity.name}"`;
  const fix =
    'run `vault mcp init` in the project to mint an agent token and serve with it (VAULT_TOKEN_FILE or --token-file)';
  if (self.system) {
    throw new ServingIdentityError(`${server} refuses to serve with a system token (${who}); ${fix}`);
  }
  if (self.policies.includes('root')) {
    throw new ServingIdentityError(`${server} refuses to serve with a root-policy token (${who}); ${fix}`);
  }
  if (self.identity.type === 'human') {
    throw new ServingIdentityError(
      `${server} refuses to serve with a person's token (${who}): the agent would act and be audited as them; ${fix}`,
    );
  }
}
