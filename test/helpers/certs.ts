// Throwaway certificate authorities and certificates for TLS tests, made with the openssl CLI
// in a temp dir (EC P-256, valid one day). Nothing here is meant for production.
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface CertFiles {
  certFile: string;
  keyFile: string;
}

export interface TestCa extends CertFiles {
  /** Issues a leaf certificate (server and client usage) for these subject alternative names. */
  issue(name: string, altNames?: string[]): CertFiles;
}

export interface CertDir {
  dir: string;
  ca(name: string): TestCa;
  remove(): void;
}

const openssl = (cwd: string, args: string[]) => execFileSync('openssl', args, { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
const EC = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

export function makeCertDir(): CertDir {
  const dir = mkdtempSync(join(tmpdir(), 'icp-certs-'));
  return {
    dir,
    ca(caName) {
      const ca = { certFile: join(dir, `${caName}.crt`), keyFile: join(dir, `${caName}.key`) };
      openssl(dir, [
        'req',
        '-x509',
        ...EC,
        '-keyout',
        ca.keyFile,
        '-out',
        ca.certFile,
        '-days',
        '1',
        '-subj',
        `/CN=${caName}`,
        '-addext',
        'basicConstraints=critical,CA:TRUE',
        '-addext',
        'keyUsage=critical,keyCertSign,cRLSign',
      ]);
      return {
        ...ca,
        issue(name, altNames = ['IP:127.0.0.1', 'DNS:localhost']) {
          const leaf = { certFile: join(dir, `${caName}-${name}.crt`), keyFile: join(dir, `${caName}-${name}.key`) };
          const csr = join(dir, `${caName}-${name}.csr`);
          const ext = join(dir, `${caName}-${name}.ext`);
          writeFileSync(ext, `subjectAltName=${altNames.join(',')}\nextendedKeyUsage=serverAuth,clientAuth\nbasicConstraints=CA:FALSE\n`);
          openssl(dir, ['req', ...EC, '-keyout', leaf.keyFile, '-out', csr, '-subj', `/CN=${name}`]);
          openssl(dir, [
            'x509',
            '-req',
            '-in',
            csr,
            '-CA',
            ca.certFile,
            '-CAkey',
            ca.keyFile,
            '-CAcreateserial',
            '-out',
            leaf.certFile,
            '-days',
            '1',
            '-extfile',
            ext,
          ]);
          return leaf;
        },
      };
    },
    remove() {
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
