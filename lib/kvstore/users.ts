/**
 * The etcd users of a clustermesh etcd (DESIGN §6). With --client-cert-auth the user is the client
 * certificate's CN, so the apiserver's bootstrap (which creates them) and the CLI (which issues the
 * certificates) must agree on these names.
 */
export const ADMIN_USER = 'admin';

/** The user a peer's agents read this cluster's etcd as. */
export const remoteUserName = (peer: string): string => `remote-${peer}`;

/** The read-only user this cluster's own agents read the kvstoremesh cache as. */
export const LOCAL_READER_USER = 'local-reader';
