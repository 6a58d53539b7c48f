// The set of nodes this router can dispatch to: static nodes from config plus the control plane's
// membership, each with a live NodeConnection. Reconciles on every membership snapshot.
import { EventEmitter } from 'node:events';
import type { Logger } from '../../common/logger.ts';
import { NodeConnection } from './node-connection.ts';
import type { Member } from './membership.ts';
import type { AgentChannelSecurity } from '../../common/tls.ts';

export class NodePool extends EventEmitter {
  private readonly nodes = new Map<string, NodeConnection>();
  private staticMembers: Member[] = [];
  private dynamicMembers: Member[] = [];

  constructor(
    private readonly routerId: string,
    private readonly logger: Logger,
    private readonly security?: AgentChannelSecurity,
  ) {
    super();
  }

  setStatic(members: Member[]): void {
    this.staticMembers = members;
    this.reconcile();
  }

  setMembers(members: Member[]): void {
    this.dynamicMembers = members;
    this.reconcile();
  }

  list(): NodeConnection[] {
    return [...this.nodes.values()];
  }

  get(id: string): NodeConnection | undefined {
    return this.nodes.get(id);
  }

  close(): void {
    for (const n of this.nodes.values()) n.close();
    this.nodes.clear();
  }

  private reconcile(): void {
    const wanted = new Map<string, Member>();
    for (const m of [...this.staticMembers, ...this.dynamicMembers]) wanted.set(m.id, m);
    for (const [id, conn] of this.nodes) {
      const m = wanted.get(id);
      // A new address or a new call token (node secret rotated) needs a new channel.
      if (!m || m.address !== conn.address || m.callToken !== conn.callToken) {
        conn.close();
        this.nodes.delete(id);
        this.logger.info({ node: id }, 'node left the pool');
      }
    }
    for (const m of wanted.values()) {
      let conn = this.nodes.get(m.id);
      if (!conn) {
        conn = new NodeConnection(m.id, m.address, this.routerId, this.logger, this.security, m.callToken);
        conn.on('status', () => this.emit('change'));
        conn.on('lost', () => this.emit('change'));
        this.nodes.set(m.id, conn);
        conn.start();
        this.logger.info({ node: m.id, address: m.address }, 'node joined the pool');
      }
      conn.cordoned = m.cordoned;
    }
    this.emit('change');
  }
}
