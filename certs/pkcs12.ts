// PKCS#12 (.p12 / .pfx) bundles of a device certificate, its private key and the chain, password
// protected, for factories and routers that import .p12 files. node-forge writes them (AES-256
// PBES2 for the key and certificate bags, HMAC-SHA-256 MAC): the gateway's device keys are RSA, which
// forge supports.
import forge from 'node-forge'

/** At least this many characters: the bundle holds a private key. */
export const MIN_P12_PASSWORD_LENGTH = 8

export function toPkcs12 (o: { certPem: string, keyPem: string, chainPem: string, password: string, friendlyName: string }): Buffer {
  const key = forge.pki.privateKeyFromPem(o.keyPem)
  const pems = [o.certPem, ...(o.chainPem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [])]
  const certs = pems.map(p => forge.pki.certificateFromPem(p))
  const asn1 = forge.pkcs12.toPkcs12Asn1(key, certs, o.password, { algorithm: 'aes256', friendlyName: o.friendlyName, generateLocalKeyId: true })
  return Buffer.from(forge.asn1.toDer(asn1).getBytes(), 'binary')
}
