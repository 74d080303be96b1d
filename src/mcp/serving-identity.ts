/**
 * Which tokens may serve an agent. The MCP server acts for one agent with that agent's own
 * token: a person's token, a system token or one carrying the root policy would let the agent
 * act with the person's rights and be audited as them, so they are refused before anything is
 * served. The broker is the opposite: it leases for the agent with its own, non-agent identity.
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

/**
 * Throws unless `self` is a token fit for the credential broker. The broker leases *for* the
 * agent and holds the values itself, so it needs its own identity that may act for the agent
 * (e.g. `workload:vault-broker`): an agent's token would make the agent its own broker (and
 * an agent without `reveal` gets no value to put on the wire); a system or root-policy token
 * could lease anything for anyone.
 */
export function requireBrokerToken(self: TokenInfo, broker: string): void {
  const who = `${self.identity.type} "${self.identity.name}"`;
  const fix =
    'mint a broker token (e.g. `vault tokens create --identity workload:vault-broker --policy broker`) ' +
    'whose policy may lease the credentials and act for the agent, and pass it as VAULT_BROKER_TOKEN_FILE or --token-file';
  if (self.system)
    throw new ServingIdentityError(`${broker} refuses to run with a system token (${who}); ${fix}`);
  if (self.policies.includes('root')) {
    throw new ServingIdentityError(`${broker} refuses to run with a root-policy token (${who}); ${fix}`);
  }
  if (self.identity.type === 'agent') {
    throw new ServingIdentityError(
      `${broker} refuses to run with an agent's token (${who}): the broker needs its own identity that may act for the agent; ${fix}`,
    );
  }
}
