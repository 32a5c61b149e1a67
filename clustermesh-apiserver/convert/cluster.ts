/** The cluster whose objects are being converted (its name and ID go into every record). */
export interface ClusterRef {
  name: string;
  /** 1..255 */
  id: number;
}
