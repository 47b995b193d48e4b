#!/usr/bin/python3
"""Tenants for tests/bench/bench_reload.sh (python3-cryptography).

  gen_tenants.py certs DIR N
      DIR/pki/ca.pem (one CA, ECDSA P-256), DIR/certs/tNNNNN.example/{fullchain,
      privkey}.pem (certbot-like: one directory per tenant). DIR/done marks a complete
      set (then nothing is done: the set is a cache).
  gen_tenants.py tenants DIR N BACKEND OUT
      OUT/tNNNNN.example.json naming DIR's files, c2s_backend BACKEND.
  gen_tenants.py renew CERT KEY DOMAIN
      A renewal as certbot makes one: a new key and a new (self-signed) certificate for
      DOMAIN written to new files renamed over CERT and KEY (new inodes).
"""
import datetime, os, sys
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID, ExtendedKeyUsageOID


def renew(cert_path, key_path, dom):
    now = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=1)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, dom)])
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=60))
            .add_extension(x509.SubjectAlternativeName([x509.DNSName(dom)]), critical=False)
            .sign(key, hashes.SHA256()))
    for path, data, mode in ((key_path, key.private_bytes(serialization.Encoding.PEM,
                                                          serialization.PrivateFormat.PKCS8,
                                                          serialization.NoEncryption()), 0o600),
                             (cert_path, cert.public_bytes(serialization.Encoding.PEM), 0o644)):
        tmp = path + '.new'
        with open(tmp, 'wb') as f:
            f.write(data)
        os.chmod(tmp, mode)
        os.rename(tmp, path)
    return 0


def main():
    if sys.argv[1] == 'renew':
        return renew(sys.argv[2], sys.argv[3], sys.argv[4])
    if sys.argv[1] == 'tenants':
        d, n, backend, out = sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]
        os.makedirs(out, exist_ok=True)
        for i in range(1, n + 1):
            dom = 't%05d.example' % i
            cd = os.path.join(d, 'certs', dom)
            open(os.path.join(out, dom + '.json'), 'w').write(
                '{"domain": "%s", "certificate": "%s/fullchain.pem", "key": "%s/privkey.pem", '
                '"c2s_backend": "%s"}\n' % (dom, cd, cd, backend))
        return 0
    d, n = sys.argv[2], int(sys.argv[3])
    if os.path.exists(os.path.join(d, 'done')):
        return 0
    for sub in ('pki', 'certs'):
        os.makedirs(os.path.join(d, sub), exist_ok=True)
    now = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=1)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, 'bench reload CA')])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=90))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False,
                                       False), critical=True)
          .sign(ca_key, hashes.SHA256()))
    ca_pem = ca.public_bytes(serialization.Encoding.PEM)
    open(os.path.join(d, 'pki', 'ca.pem'), 'wb').write(ca_pem)
    eku = x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH])
    for i in range(1, n + 1):
        dom = 't%05d.example' % i
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (x509.CertificateBuilder()
                .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, dom)]))
                .issuer_name(ca_name).public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now).not_valid_after(now + datetime.timedelta(days=60))
                .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                .add_extension(eku, critical=False)
                .add_extension(x509.SubjectAlternativeName([x509.DNSName(dom)]), critical=False)
                .sign(ca_key, hashes.SHA256()))
        cd = os.path.join(d, 'certs', dom)
        os.makedirs(cd, exist_ok=True)
        open(os.path.join(cd, 'fullchain.pem'), 'wb').write(
            cert.public_bytes(serialization.Encoding.PEM) + ca_pem)
        kp = os.path.join(cd, 'privkey.pem')
        open(kp, 'wb').write(key.private_bytes(serialization.Encoding.PEM,
                                               serialization.PrivateFormat.PKCS8,
                                               serialization.NoEncryption()))
        os.chmod(kp, 0o600)
    open(os.path.join(d, 'done'), 'w').write('%d\n' % n)
    return 0


if __name__ == '__main__':
    sys.exit(main())
