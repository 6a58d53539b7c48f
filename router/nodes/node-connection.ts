// One GPU node as this router sees it: the node's status stream (common/status-watch.ts) plus
// this router's own in-flight count to the node (which covers the lag between a dispatch and the
// next status).
import type { NodeStatus__Output } from '../../common/grpc.ts';
import { StatusWatch } from '../../common/status-watch.ts';

export class NodeConnection extends StatusWatch {
  cordoned = false;
  /** Generations this router has in flight on the node. */
  inFlight = 0;
  /** Dispatches since the last status arrived: not yet visible in the node's own counters. */
  dispatchedSinceStatus = 0;
  /** This router's in-flight count when the last status arrived (to tell its work from others'). */
  inFlightAtStatus = 0;

  protected override received(_status: NodeStatus__Output): void {
    this.dispatchedSinceStatus = 0;
    this.inFlightAtStatus = this.inFlight;
  }
}
