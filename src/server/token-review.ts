import { loadKubernetesClient } from '../k8s/client-module.js';

/** What the Kubernetes login needs of the API server: a TokenReview. */
export interface TokenReviewer {
  review(token: string, audiences: string[]): Promise<TokenReviewResult>;
}

export interface TokenReviewResult {
  authenticated: boolean;
  username?: string;
  audiences?: string[];
  extra?: Record<string, string[]>;
  error?: string;
}

/** A TokenReviewer on @kubernetes/client-node (loaded lazily: standalone servers never need it, and the npm package does not install it). */
export async function kubernetesTokenReviewer(
  options: { kubeconfigPath?: string } = {},
): Promise<TokenReviewer> {
  const k8s = await loadKubernetesClient('Kubernetes login (--kubernetes-auth)');
  const kc = new k8s.KubeConfig();
  if (options.kubeconfigPath) kc.loadFromFile(options.kubeconfigPath);
  else kc.loadFromDefault();
  const api = kc.makeApiClient(k8s.AuthenticationV1Api);
  return {
    async review(token, audiences) {
      const review = await api.createTokenReview({
        body: { apiVersion: 'authentication.k8s.io/v1', kind: 'TokenReview', spec: { token, audiences } },
      });
      const status = review.status ?? {};
      return {
        authenticated: status.authenticated === true,
        ...(status.user?.username ? { username: status.user.username } : {}),
        ...(status.audiences ? { audiences: status.audiences } : {}),
        ...(status.user?.extra ? { extra: status.user.extra } : {}),
        ...(status.error ? { error: status.error } : {}),
      };
    },
  };
}
