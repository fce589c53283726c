// Independent check of a modelsign bundle with sigstore-js (@sigstore/verify).
// usage: node verify-bundle.mjs BUNDLE.json PUBLIC_KEY.pem EXPECTED_SHA256_HEX
// Key-signed bundles carry no transparency-log entry, so thresholds are 0 and the key is
// supplied through a key finder (as `cosign verify --insecure-ignore-tlog` does).
import { readFileSync } from 'node:fs';
import { createPublicKey } from 'node:crypto';
import { bundleFromJSON } from '@sigstore/bundle';
import { Verifier, toSignedEntity, toTrustMaterial } from '@sigstore/verify';

const [bundlePath, keyPath, expectedDigest] = process.argv.slice(2);
const bundle = bundleFromJSON(JSON.parse(readFileSync(bundlePath, 'utf8')));
const publicKey = createPublicKey(readFileSync(keyPath));
const emptyRoot = { mediaType: 'application/vnd.dev.sigstore.trustedroot+json;version=0.1', tlogs: [], certificateAuthorities: [], ctlogs: [], timestampAuthorities: [] };
const trust = toTrustMaterial(emptyRoot, () => ({ publicKey, validFor: () => true }));
const verifier = new Verifier(trust, { tlogThreshold: 0, ctlogThreshold: 0, timestampThreshold: 0 });
try {
  const signer = verifier.verify(toSignedEntity(bundle));
  const statement = JSON.parse(Buffer.from(bundle.content.dsseEnvelope.payload).toString('utf8'));
  const subjects = statement.subject.map((s) => s.digest.sha256);
  if (!subjects.includes(expectedDigest)) {
    console.error(`statement subjects ${subjects} do not include ${expectedDigest}`);
    process.exit(1);
  }
  console.log(`verified: hint=${signer.key ? 'key' : 'cert'} predicateType=${statement.predicateType}`);
} catch (error) {
  console.error(`rejected: ${error.code || ''} ${error.message}`);
  process.exit(1);
}
