/**
 * One consistent listing of a kvstore prefix, and what a store may do with it.
 *
 * The prefix is read in pages (a bounded reply each) and every page after the first, and the
 * writer's sync canary, are read at the revision of the first page: the listing is one snapshot
 * even when it takes many requests, and "the canary is present" means present in that snapshot.
 * A compaction past that revision while paging fails the listing ("required revision has been
 * compacted"); the store lists again.
 */
import { Range, type Etcd3 } from 'etcd3';

/** Keys per range request: a page of typical records stays far below gRPC's reply limit. */
export const DEFAULT_LISTING_PAGE_SIZE = 1000;

export interface Listing {
  /** The etcd revision every page (and the canary) was read at. */
  revision: string;
  /** key → value bytes (slices of the responses: copy what you keep). */
  kvs: Map<string, Buffer>;
  /** Whether the canary existed at `revision`; true when no canary was asked for. */
  canaryPresent: boolean;
  /** Range requests it took for the prefix. */
  pages: number;
}

export interface ListingRequest {
  prefix: string;
  canaryKey?: string;
  pageSize?: number;
}

export async function readListing(client: Etcd3, request: ListingRequest): Promise<Listing> {
  const pageSize = request.pageSize ?? DEFAULT_LISTING_PAGE_SIZE;
  const whole = Range.prefix(request.prefix);
  const kvs = new Map<string, Buffer>();
  const readPage = async (start: Buffer, revision?: string) => {
    const builder = client.getAll().inRange({ start, end: whole.end }).limit(pageSize);
    const page = await (revision === undefined ? builder : builder.revision(revision)).exec();
    for (const kv of page.kvs) kvs.set(kv.key.toString(), kv.value);
    const last = page.kvs.at(-1);
    // the next page starts at the smallest key after the last one read
    return {
      revision: page.header.revision,
      next: page.more && last ? Buffer.concat([last.key, Buffer.from([0])]) : null,
    };
  };
  const first = await readPage(whole.start);
  const revision = first.revision;
  let pages = 1;
  for (let next = first.next; next !== null; pages++) next = (await readPage(next, revision)).next;
  const canaryPresent =
    request.canaryKey === undefined ||
    (await client.get(request.canaryKey).revision(revision).exec()).kvs.length > 0;
  return { revision, kvs, canaryPresent, pages };
}

export interface ListingPlan {
  /** Listed keys that are new or whose bytes changed. */
  upserts: string[];
  /** Known keys the listing lacks, deleted now. */
  deletes: string[];
  /** Known keys the listing lacks, kept until a listing with the canary. */
  held: string[];
}

/**
 * Pure: what a full listing changes in what a store knows. Keys that did not come back are
 * deleted only when the listing is authoritative (the writer's canary is in it, or the writer
 * has none): a writer that lost its data (an etcd restarted empty) repopulates it before it
 * writes its canary again, and until then a missing key may simply not be rewritten yet.
 */
export function planListing(
  known: ReadonlyMap<string, { raw: Buffer }>,
  listing: ReadonlyMap<string, Buffer>,
  authoritative: boolean,
): ListingPlan {
  const upserts: string[] = [];
  for (const [key, raw] of listing) {
    if (!known.get(key)?.raw.equals(raw)) upserts.push(key);
  }
  const missing = [...known.keys()].filter((key) => !listing.has(key));
  return authoritative ? { upserts, deletes: missing, held: [] } : { upserts, deletes: [], held: missing };
}
