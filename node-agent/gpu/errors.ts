// nvidia-smi's own failure messages: the monitor names a failed poll by them (a lost GPU is
// unhealthy at once) and recognises "No devices were found".
// Real texts: test/fixtures/nvidia-smi/faults/device-handle-*.txt.
import { canonicalPciAddress } from './kernel-log.ts';

export type SmiErrorKind = 'gpu_lost' | 'device_handle_unknown_error' | 'no_devices' | 'invalid_field' | 'driver_not_loaded';

export function parseNvidiaSmiError(text: string): { kind: SmiErrorKind; pci: string | null } | null {
  const flat = text.replace(/\s+/g, ' ');
  const handle = /Unable to determine the device handle for GPU ?([0-9A-Fa-f:.]+): (.*)/.exec(flat);
  if (handle) {
    return { kind: /GPU is lost/i.test(handle[2]!) ? 'gpu_lost' : 'device_handle_unknown_error', pci: canonicalPciAddress(handle[1]!) };
  }
  if (/No devices were found/i.test(flat)) return { kind: 'no_devices', pci: null };
  if (/is not a valid field to query/i.test(flat)) return { kind: 'invalid_field', pci: null };
  if (/NVIDIA-SMI has failed because it couldn't communicate with the NVIDIA driver/i.test(flat))
    return { kind: 'driver_not_loaded', pci: null };
  return null;
}
