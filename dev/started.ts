/**
 * What this process started of the local stack, for a Ctrl-C handler: the processes run in their
 * own process groups, so nothing else stops them (hack/demo.ts, hack/cluster.ts).
 */
import { ControlPlane } from './control-plane.ts';
import { CsiStack } from './csi-stack.ts';

/** Stops every CSI stack, then every control plane, this process started and has not stopped, also ones still starting. */
export async function stopStarted(): Promise<void> {
  for (const stack of [...CsiStack.running]) await stack.stop();
  for (const cp of [...ControlPlane.running]) await cp.stop();
}
