#include "server/tls/pki.h"

#include <fcntl.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <ctime>
#include <fstream>
#include <memory>
#include <sstream>

#include "common/status_macros.h"
#include "common/strings.h"
#include "sandbox/unique_fd.h"
#include "vocab/envoy_name.h"
#include "vocab/hex.h"

namespace vigo::server::tls {
namespace fs = std::filesystem;
namespace {

struct Free {
  void operator()(EVP_PKEY* p) const { EVP_PKEY_free(p); }
  void operator()(X509* p) const { X509_free(p); }
  void operator()(BIO* p) const { BIO_free_all(p); }
  void operator()(BIGNUM* p) const { BN_free(p); }
  void operator()(X509_EXTENSION* p) const { X509_EXTENSION_free(p); }
  void operator()(X509_STORE* p) const { X509_STORE_free(p); }
  void operator()(X509_STORE_CTX* p) const { X509_STORE_CTX_free(p); }
  void operator()(char* p) const { OPENSSL_free(p); }
};
template <typename T>
using Ptr = std::unique_ptr<T, Free>;

std::string OpenSslError() {
  unsigned long e = ERR_get_error();
  ERR_clear_error();
  if (e == 0) return "unknown OpenSSL error";
  char buf[256];
  ERR_error_string_n(e, buf, sizeof(buf));
  return buf;
}

absl::StatusOr<Ptr<EVP_PKEY>> NewP256Key() {
  Ptr<EVP_PKEY> key(EVP_PKEY_Q_keygen(nullptr, nullptr, "EC", "P-256"));
  if (!key) return absl::InternalError(StrCat("EC P-256 key generation: ", OpenSslError()));
  return key;
}

absl::Status RefuseExisting(const fs::path& p) {
  std::error_code ec;
  if (fs::exists(fs::symlink_status(p, ec))) {
    return absl::AlreadyExistsError(StrCat(p.string(), ": already exists; not overwriting"));
  }
  return absl::OkStatus();
}

// Writes through a BIO on a fresh O_EXCL fd with `mode`.
template <typename WriteFn>
absl::Status WriteExclusive(const fs::path& path, mode_t mode, WriteFn write) {
  sandbox::UniqueFd fd(::open(path.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode));
  if (!fd) {
    if (errno == EEXIST) {
      return absl::AlreadyExistsError(StrCat(path.string(), ": already exists; not overwriting"));
    }
    return absl::InternalError(StrCat(path.string(), ": cannot create"));
  }
  ::fchmod(fd.get(), mode);  // umask may have narrowed it; never widened past `mode`
  Ptr<BIO> bio(BIO_new_fd(fd.get(), BIO_NOCLOSE));
  if (!bio || write(bio.get()) != 1 || BIO_flush(bio.get()) != 1) {
    bio.reset();
    fd.reset();
    ::unlink(path.c_str());
    return absl::InternalError(StrCat(path.string(), ": write failed: ", OpenSslError()));
  }
  if (::fsync(fd.get()) != 0) return absl::InternalError(StrCat(path.string(), ": fsync failed"));
  return absl::OkStatus();
}

absl::Status WriteKey(const fs::path& path, EVP_PKEY* key) {
  return WriteExclusive(path, 0600, [key](BIO* b) {
    return PEM_write_bio_PrivateKey(b, key, nullptr, nullptr, 0, nullptr, nullptr);
  });
}

absl::Status WriteCert(const fs::path& path, X509* cert) {
  return WriteExclusive(path, 0644, [cert](BIO* b) { return PEM_write_bio_X509(b, cert); });
}

absl::StatusOr<std::string> ReadSmallFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(StrCat(path.string(), ": cannot read"));
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

absl::StatusOr<Ptr<X509>> LoadCert(const fs::path& path) {
  VIGO_ASSIGN_OR_RETURN(std::string pem, ReadSmallFile(path));
  Ptr<BIO> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  Ptr<X509> cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
  if (!cert) {
    ERR_clear_error();
    return absl::InvalidArgumentError(StrCat(path.string(), ": not a PEM certificate"));
  }
  return cert;
}

absl::StatusOr<Ptr<EVP_PKEY>> LoadKey(const fs::path& path) {
  // The key goes from the file straight into OpenSSL.
  Ptr<BIO> bio(BIO_new_file(path.c_str(), "rb"));
  if (!bio) {
    ERR_clear_error();
    return absl::NotFoundError(StrCat(path.string(), ": cannot read"));
  }
  Ptr<EVP_PKEY> key(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
  if (!key) {
    ERR_clear_error();
    return absl::InvalidArgumentError(StrCat(path.string(), ": not a PEM private key"));
  }
  return key;
}

absl::Status SetRandomSerial(X509* cert) {
  unsigned char bytes[16];
  if (RAND_bytes(bytes, sizeof(bytes)) != 1) return absl::InternalError("RAND_bytes failed");
  bytes[0] &= 0x7f;  // positive
  bytes[0] |= 0x01;  // and 16 bytes long
  Ptr<BIGNUM> bn(BN_bin2bn(bytes, sizeof(bytes), nullptr));
  if (!bn || !BN_to_ASN1_INTEGER(bn.get(), X509_get_serialNumber(cert))) {
    return absl::InternalError("cannot set certificate serial");
  }
  return absl::OkStatus();
}

absl::Status AddExt(X509* cert, X509* issuer, int nid, const std::string& value) {
  X509V3_CTX ctx;
  X509V3_set_ctx_nodb(&ctx);
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  Ptr<X509_EXTENSION> ext(X509V3_EXT_nconf_nid(nullptr, &ctx, nid, value.c_str()));
  if (!ext || X509_add_ext(cert, ext.get(), -1) != 1) {
    return absl::InternalError(StrCat("certificate extension ", OBJ_nid2sn(nid), ": ",
                                      OpenSslError()));
  }
  return absl::OkStatus();
}

// Valid from `now` (less five minutes of clock skew) for `validity`.
absl::StatusOr<Ptr<X509>> NewCert(EVP_PKEY* subject_key, std::string_view cn,
                                  std::chrono::seconds validity, std::time_t now) {
  Ptr<X509> cert(X509_new());
  if (!cert || X509_set_version(cert.get(), 2) != 1) return absl::InternalError("X509_new");
  VIGO_RETURN_IF_ERROR(SetRandomSerial(cert.get()));
  if (X509_time_adj_ex(X509_getm_notBefore(cert.get()), 0, -300, &now) == nullptr ||
      X509_time_adj_ex(X509_getm_notAfter(cert.get()), 0, static_cast<long>(validity.count()),
                       &now) == nullptr) {
    return absl::InvalidArgumentError("certificate validity out of range");
  }
  X509_NAME* name = X509_get_subject_name(cert.get());
  std::string cn_s(cn);
  if (X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC,
                                 static_cast<const unsigned char*>(
                                     static_cast<const void*>("Vigo")),
                                 -1, -1, 0) != 1 ||
      X509_NAME_add_entry_by_txt(
          name, "CN", MBSTRING_ASC,
          static_cast<const unsigned char*>(static_cast<const void*>(cn_s.c_str())), -1, -1,
          0) != 1) {
    return absl::InvalidArgumentError(StrCat("bad certificate subject '", cn, "'"));
  }
  if (X509_set_pubkey(cert.get(), subject_key) != 1) return absl::InternalError("X509_set_pubkey");
  return cert;
}

absl::Status Sign(X509* cert, EVP_PKEY* key) {
  if (X509_sign(cert, key, EVP_sha256()) <= 0) {
    return absl::InternalError(StrCat("certificate signing: ", OpenSslError()));
  }
  return absl::OkStatus();
}

int64_t AsnTimeToUnix(const ASN1_TIME* t) {
  std::tm tm{};
  if (ASN1_TIME_to_tm(t, &tm) != 1) return 0;
  return static_cast<int64_t>(timegm(&tm));
}

absl::StatusOr<CertInfo> InfoOf(X509* cert) {
  CertInfo info;
  char cn[256] = {0};
  int n = X509_NAME_get_text_by_NID(X509_get_subject_name(cert), NID_commonName, cn, sizeof(cn));
  if (n > 0) info.common_name.assign(cn, static_cast<size_t>(n));
  Ptr<BIGNUM> bn(ASN1_INTEGER_to_BN(X509_get0_serialNumber(cert), nullptr));
  if (bn) {
    Ptr<char> hex(BN_bn2hex(bn.get()));
    if (hex) info.serial_hex = hex.get();
  }
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int md_len = 0;
  if (X509_digest(cert, EVP_sha256(), md, &md_len) != 1) {
    return absl::InternalError("certificate digest failed");
  }
  info.fingerprint_sha256 += vocab::Hex(std::span<const uint8_t>(md, md_len));
  info.not_before_unix = AsnTimeToUnix(X509_get0_notBefore(cert));
  info.not_after_unix = AsnTimeToUnix(X509_get0_notAfter(cert));
  return info;
}

struct LoadedCa {
  Ptr<X509> cert;
  Ptr<EVP_PKEY> key;
};

absl::StatusOr<LoadedCa> LoadCa(const CaFiles& ca) {
  LoadedCa out;
  VIGO_ASSIGN_OR_RETURN(out.cert, LoadCert(ca.cert));
  VIGO_ASSIGN_OR_RETURN(out.key, LoadKey(ca.key));
  if (X509_check_private_key(out.cert.get(), out.key.get()) != 1) {
    ERR_clear_error();
    return absl::InvalidArgumentError(
        StrCat(ca.key.string(), ": does not match ", ca.cert.string()));
  }
  return out;
}

absl::StatusOr<CertInfo> IssueLeaf(const CaFiles& ca, const fs::path& cert_out,
                                   const fs::path& key_out, std::string_view cn,
                                   std::chrono::seconds validity, const std::string& eku,
                                   const std::string& san, bool cap_at_ca = false) {
  VIGO_RETURN_IF_ERROR(RefuseExisting(cert_out));
  VIGO_RETURN_IF_ERROR(RefuseExisting(key_out));
  VIGO_ASSIGN_OR_RETURN(LoadedCa loaded, LoadCa(ca));
  // One `now` for the check and the certificate, so the leaf's notAfter is
  // exactly what was checked.
  const std::time_t now = ::time(nullptr);
  {
    VIGO_ASSIGN_OR_RETURN(CertInfo ca_info, InfoOf(loaded.cert.get()));
    if (cap_at_ca && ca_info.not_after_unix > now &&
        validity.count() > ca_info.not_after_unix - now) {
      validity = std::chrono::seconds(ca_info.not_after_unix - now);
    }
    absl::Status within = CheckValidityWithinCa(ca_info, validity, now);
    if (!within.ok()) {
      return absl::FailedPreconditionError(StrCat(ca.cert.string(), ": ", within.message()));
    }
  }
  VIGO_ASSIGN_OR_RETURN(Ptr<EVP_PKEY> key, NewP256Key());
  VIGO_ASSIGN_OR_RETURN(Ptr<X509> cert, NewCert(key.get(), cn, validity, now));
  if (X509_set_issuer_name(cert.get(), X509_get_subject_name(loaded.cert.get())) != 1) {
    return absl::InternalError("X509_set_issuer_name");
  }
  X509* c = cert.get();
  X509* issuer = loaded.cert.get();
  VIGO_RETURN_IF_ERROR(AddExt(c, issuer, NID_basic_constraints, "critical,CA:FALSE"));
  VIGO_RETURN_IF_ERROR(AddExt(c, issuer, NID_key_usage, "critical,digitalSignature"));
  VIGO_RETURN_IF_ERROR(AddExt(c, issuer, NID_ext_key_usage, eku));
  VIGO_RETURN_IF_ERROR(AddExt(c, issuer, NID_subject_key_identifier, "hash"));
  VIGO_RETURN_IF_ERROR(AddExt(c, issuer, NID_authority_key_identifier, "keyid:always"));
  if (!san.empty()) VIGO_RETURN_IF_ERROR(AddExt(c, issuer, NID_subject_alt_name, san));
  VIGO_RETURN_IF_ERROR(Sign(c, loaded.key.get()));
  // Key first: a cert without its key is useless, a key without cert is inert.
  VIGO_RETURN_IF_ERROR(WriteKey(key_out, key.get()));
  absl::Status st = WriteCert(cert_out, c);
  if (!st.ok()) {
    ::unlink(key_out.c_str());
    return st;
  }
  return InfoOf(c);
}

}  // namespace

absl::Status CreateCa(const CaFiles& out, std::string_view common_name) {
  VIGO_RETURN_IF_ERROR(RefuseExisting(out.cert));
  VIGO_RETURN_IF_ERROR(RefuseExisting(out.key));
  VIGO_ASSIGN_OR_RETURN(Ptr<EVP_PKEY> key, NewP256Key());
  VIGO_ASSIGN_OR_RETURN(Ptr<X509> cert,
                        NewCert(key.get(), common_name, std::chrono::hours(24 * 3650),
                                ::time(nullptr)));
  X509* c = cert.get();
  if (X509_set_issuer_name(c, X509_get_subject_name(c)) != 1) {
    return absl::InternalError("X509_set_issuer_name");
  }
  VIGO_RETURN_IF_ERROR(AddExt(c, c, NID_basic_constraints, "critical,CA:TRUE,pathlen:0"));
  VIGO_RETURN_IF_ERROR(AddExt(c, c, NID_key_usage, "critical,keyCertSign,cRLSign"));
  VIGO_RETURN_IF_ERROR(AddExt(c, c, NID_subject_key_identifier, "hash"));
  VIGO_RETURN_IF_ERROR(Sign(c, key.get()));
  VIGO_RETURN_IF_ERROR(WriteKey(out.key, key.get()));
  absl::Status st = WriteCert(out.cert, c);
  if (!st.ok()) ::unlink(out.key.c_str());
  return st;
}

absl::StatusOr<CertInfo> IssueServerCert(const CaFiles& ca, const fs::path& cert_out,
                                         const fs::path& key_out, std::string_view hostname) {
  if (hostname.empty() || hostname.find_first_of(",: \t\n/") != std::string_view::npos) {
    return absl::InvalidArgumentError(StrCat("bad server hostname '", hostname, "'"));
  }
  std::string san = "DNS:localhost,IP:127.0.0.1,IP:::1";
  if (hostname != "localhost") san = StrCat("DNS:", hostname, ",", san);
  // Capped, not refused: init has no flag to choose a shorter validity, and
  // the server certificate is replaced together with the CA anyway.
  return IssueLeaf(ca, cert_out, key_out, hostname, std::chrono::hours(24 * 730),
                   "serverAuth", san, /*cap_at_ca=*/true);
}

absl::Status CheckValidityWithinCa(const CertInfo& ca, std::chrono::seconds validity,
                                   int64_t now_unix) {
  std::time_t t = static_cast<std::time_t>(ca.not_after_unix);
  std::tm tm{};
  gmtime_r(&t, &tm);
  char when[32];
  std::strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
  const int64_t left = ca.not_after_unix - now_unix;
  if (left <= 0) {
    return absl::FailedPreconditionError(
        StrCat("the CA certificate expired at ", when, "; it cannot issue certificates"));
  }
  if (validity.count() > left) {
    constexpr int64_t kDay = 24 * 3600;
    return absl::FailedPreconditionError(
        StrCat("a certificate valid for ", validity.count() / kDay, " days (", validity.count(),
               " s) would outlive the CA certificate, which expires at ", when, " (in ",
               left / kDay, " days); the longest validity allowed now is ", left / kDay,
               " days"));
  }
  return absl::OkStatus();
}

absl::StatusOr<CertInfo> IssueClientCert(const CaFiles& ca, const fs::path& cert_out,
                                         const fs::path& key_out, std::string_view envoy_name,
                                         std::chrono::seconds validity) {
  VIGO_RETURN_IF_ERROR(vocab::ValidateEnvoyName(envoy_name));
  return IssueLeaf(ca, cert_out, key_out, envoy_name, validity, "clientAuth", "");
}

absl::StatusOr<CertInfo> CertInfoFromPem(std::string_view pem) {
  Ptr<BIO> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  Ptr<X509> cert(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
  if (!cert) {
    ERR_clear_error();
    return absl::InvalidArgumentError("not a PEM certificate");
  }
  return InfoOf(cert.get());
}

absl::StatusOr<CertInfo> ReadCertInfo(const fs::path& cert_path) {
  VIGO_ASSIGN_OR_RETURN(Ptr<X509> cert, LoadCert(cert_path));
  return InfoOf(cert.get());
}

absl::Status CheckServerTlsMaterial(const fs::path& tls_dir) {
  const fs::path ca_pem = tls_dir / "ca.pem";
  const fs::path srv_pem = tls_dir / "server.pem";
  const fs::path srv_key = tls_dir / "server.key";
  VIGO_ASSIGN_OR_RETURN(Ptr<X509> ca, LoadCert(ca_pem));
  VIGO_ASSIGN_OR_RETURN(Ptr<X509> cert, LoadCert(srv_pem));
  VIGO_ASSIGN_OR_RETURN(Ptr<EVP_PKEY> key, LoadKey(srv_key));
  struct stat st {};
  if (::stat(srv_key.c_str(), &st) == 0 && (st.st_mode & 0077) != 0) {
    return absl::PermissionDeniedError(
        StrCat(srv_key.string(), ": mode is too open; want 0600"));
  }
  if (X509_check_private_key(cert.get(), key.get()) != 1) {
    ERR_clear_error();
    return absl::InvalidArgumentError(
        StrCat(srv_key.string(), ": does not match ", srv_pem.string()));
  }
  Ptr<X509_STORE> store(X509_STORE_new());
  Ptr<X509_STORE_CTX> ctx(X509_STORE_CTX_new());
  if (!store || !ctx || X509_STORE_add_cert(store.get(), ca.get()) != 1 ||
      X509_STORE_CTX_init(ctx.get(), store.get(), cert.get(), nullptr) != 1) {
    return absl::InternalError("X509 store setup failed");
  }
  if (X509_verify_cert(ctx.get()) != 1) {
    int err = X509_STORE_CTX_get_error(ctx.get());
    ERR_clear_error();
    return absl::InvalidArgumentError(StrCat(srv_pem.string(), ": does not verify against ",
                                             ca_pem.string(), ": ",
                                             X509_verify_cert_error_string(err)));
  }
  return absl::OkStatus();
}

}  // namespace vigo::server::tls
