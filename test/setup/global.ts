/**
 * Vitest global setup: resolves (or builds) the real control-plane binaries once, so
 * suites that start etcd or kube-apiserver find them through TEST_ASSET_* variables.
 */
import { resolveAssets } from '../support/assets.js';

export default function setup(): void {
  const assets = resolveAssets();
  process.env.TEST_ASSET_ETCD = assets.etcd;
  process.env.TEST_ASSET_KUBE_APISERVER = assets.kubeApiserver;
  process.env.TEST_ASSET_KUBECTL = assets.kubectl;
  process.env.TEST_ASSET_HELM = assets.helm;
}
