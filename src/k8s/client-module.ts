/**
 * @kubernetes/client-node, loaded only by the commands that talk to Kubernetes (`vault operator
 * run`, `vault webhook`, `vault agent` with a kubeconfig, `vault server --kubernetes-auth`).
 * The container image has it. The npm package @ghoststack/vault-cli leaves it out (an optional
 * peer dependency): it is half of that install's size and files, and `vault dev` and the client
 * commands never load it. Where it is missing, these commands say how to add it.
 */
export const kubernetesClientPackage = '@kubernetes/client-node@1.4.0';

export class KubernetesClientMissingError extends Error {
  /** A system-error code, so start-up error handlers print the message alone. */
  readonly code = 'ERR_KUBERNETES_CLIENT_MISSING';
  constructor(command: string) {
    super(
      `${command} needs the Kubernetes client, which the npm package @ghoststack/vault-cli does not install: ` +
        `run \`npm i -g ${kubernetesClientPackage}\` (the container image has it)`,
    );
    this.name = 'KubernetesClientMissingError';
  }
}

/** The module, or a KubernetesClientMissingError naming `command` when it is not installed. */
export async function loadKubernetesClient(
  command: string,
): Promise<typeof import('@kubernetes/client-node')> {
  try {
    return await import('@kubernetes/client-node');
  } catch (err) {
    const { code, message } = err as NodeJS.ErrnoException;
    if (code === 'ERR_MODULE_NOT_FOUND' && message.includes("'@kubernetes/client-node'"))
      throw new KubernetesClientMissingError(command);
    throw err;
  }
}
