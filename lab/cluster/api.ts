/** The lab's own writes to its Kubernetes API (the kubelet's and node controller's role). */
import { KubeConfig, type KubernetesObject, KubernetesObjectApi } from '@kubernetes/client-node';

export interface LabApi {
  objects: KubernetesObjectApi;
  /** create, or replace what is there (kubelets own the objects they write) */
  put(object: KubernetesObject): Promise<void>;
  remove(object: KubernetesObject): Promise<void>;
}

/** The lab kubeconfig at `path`, on `context` (one lab cluster) when given. */
export function labKubeConfig(path: string, context?: string): KubeConfig {
  const kc = new KubeConfig();
  kc.loadFromFile(path);
  if (context) kc.setCurrentContext(context);
  return kc;
}

export function labApi(kubeconfigPath: string, context?: string): LabApi {
  const kc = labKubeConfig(kubeconfigPath, context);
  const objects = KubernetesObjectApi.makeApiClient(kc);
  const head = (o: KubernetesObject) =>
    ({ apiVersion: o.apiVersion, kind: o.kind, metadata: { name: o.metadata?.name, namespace: o.metadata?.namespace } }) as KubernetesObject & {
      metadata: { name: string };
    };
  return {
    objects,
    async put(object) {
      try {
        const existing = await objects.read(head(object));
        await objects.replace({ ...object, metadata: { ...object.metadata, resourceVersion: existing.metadata?.resourceVersion } });
      } catch (err) {
        if ((err as { code?: number }).code !== 404) throw err;
        await objects.create(object);
      }
    },
    async remove(object) {
      try {
        await objects.delete(head(object));
      } catch (err) {
        if ((err as { code?: number }).code !== 404) throw err;
      }
    },
  };
}
