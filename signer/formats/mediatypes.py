"""Media types and annotation keys that modelsign reads and writes (see FORMATS.md)."""

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
MANIFEST_TYPES = (OCI_MANIFEST, OCI_INDEX, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST)
INDEX_TYPES = (OCI_INDEX, DOCKER_MANIFEST_LIST)

OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"
OCI_EMPTY_DIGEST = "sha256:44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a"
OCI_LAYER_TAR_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"

COSIGN_SIMPLESIGNING = "application/vnd.dev.cosign.simplesigning.v1+json"
DSSE_ENVELOPE = "application/vnd.dsse.envelope.v1+json"
SIGSTORE_BUNDLE_V03 = "application/vnd.dev.sigstore.bundle.v0.3+json"
INTOTO_PAYLOAD = "application/vnd.in-toto+json"

ANNOTATION_SIGNATURE = "dev.cosignproject.cosign/signature"
ANNOTATION_CERTIFICATE = "dev.sigstore.cosign/certificate"
ANNOTATION_CHAIN = "dev.sigstore.cosign/chain"
ANNOTATION_REKOR_BUNDLE = "dev.sigstore.cosign/bundle"
ANNOTATION_BUNDLE_CONTENT = "dev.sigstore.bundle.content"
ANNOTATION_BUNDLE_PREDICATE = "dev.sigstore.bundle.predicateType"
ANNOTATION_CREATED = "org.opencontainers.image.created"
ANNOTATION_REF_NAME = "org.opencontainers.image.ref.name"
ANNOTATION_PREDICATE_TYPE = "predicateType"

COSIGN_SIGN_PREDICATE = "https://sigstore.dev/cosign/sign/v1"
VULN_PREDICATE = "https://cosign.sigstore.dev/attestation/vuln/v1"
CUSTOM_PREDICATE = "https://cosign.sigstore.dev/attestation/v1"
APPROVAL_PREDICATE = "https://modelsign.dev/attestation/approval/v1"
APPROVAL_REQUEST_PREDICATE = "https://modelsign.dev/attestation/approval-request/v1"
EVALUATION_PREDICATE = "https://modelsign.dev/attestation/evaluation/v1"
# Short names the CLI (--type) and the policy (require.attestations[].type) accept.
PREDICATE_ALIASES = {"vuln": VULN_PREDICATE, "custom": CUSTOM_PREDICATE, "approval": APPROVAL_PREDICATE,
                     "approval-request": APPROVAL_REQUEST_PREDICATE, "evaluation": EVALUATION_PREDICATE}
INTOTO_STATEMENT_V1 = "https://in-toto.io/Statement/v1"

KITOPS_CONFIG = "application/vnd.kitops.modelkit.config.v1+json"
KITOPS_MANIFEST_ARTIFACT = "application/vnd.kitops.modelkit.manifest.v1+json"
KITOPS_LAYER_PREFIX = "application/vnd.kitops.modelkit."
MODELPACK_LAYER_PREFIX = "application/vnd.cncf.model."
KITFILE_ANNOTATION = "ml.kitops.modelkit.kitfile"
