"""Détente's exception tree.

Every error the package raises on purpose derives from :class:`DetenteError`.
Third-party errors (``cryptography``, ``rfc8785``, later SQLAlchemy and httpx)
are mapped at the boundary with ``raise ... from exc`` so callers never need to
know which library failed.  HTTP status codes and exit codes are chosen only in
``detente.api`` and ``detente.cli``; nothing here knows about them.

Messages name what is wrong and which check failed; they never contain key
material or plaintext.  Verification failures are raised, never returned as a
boolean (the pyca/cryptography rule)::

    DetenteError
    ├── EncodingError                 bytes/JSON that cannot be a wire object
    │   ├── FloatNotAllowedError      a float on the wire (RFC 8785 + house rule)
    │   └── FormError (core.forms)    a form field missing or wrong; names the field
    ├── VerificationError             untrusted input failed a check
    │   ├── SignatureError            a signature does not verify
    │   ├── UnknownAgreementError     no installed agreement with that id/version
    │   ├── SupersededAgreementError  a newer version of the agreement is installed
    │   ├── AgreementSignatureError   an agreement lacks a member's valid signature
    │   ├── AgreementSuccessionError  version N+1 not signed as version N requires
    │   ├── NotAMemberError           sender (or signer) is not a member
    │   ├── WrongRecipientError       envelope addressed to somebody else
    │   ├── DecryptionError           HPKE open failed (key, header binding, tamper)
    │   ├── ContentHashError          plaintext does not match ``content_hash``
    │   ├── ReceiptError              a receipt does not match its envelope
    │   ├── ProofError                a Merkle proof does not verify
    │   │   ├── InclusionProofError
    │   │   └── ConsistencyProofError
    │   └── NoteError                 a signed note / checkpoint is malformed or unsigned
    ├── PolicyError                   what an agreement forbids
    │   ├── AgreementExpiredError     outside the agreement's validity window
    │   ├── MessageTypeNotAllowedError
    │   ├── TLPNotAllowedError        TLP above the agreement's highest
    │   ├── PersonalDataNotAllowedError
    │   ├── ExerciseNotAllowedError
    │   └── CaseTransitionError       a case cannot go from its state to that one
    ├── ReplayError                   same message id or channel seq seen before
    ├── StorageError                  the store failed (mapped from SQLAlchemy)
    ├── DeliveryError                 a peer could not be reached or refused
    └── ConfigError                   bad configuration or key files
"""

from __future__ import annotations


class DetenteError(Exception):
    """Root of every error Détente raises on purpose."""


class EncodingError(DetenteError):
    """Bytes or JSON that cannot be decoded into a wire object."""


class FloatNotAllowedError(EncodingError):
    """A float appeared where the wire format allows only integers."""


class VerificationError(DetenteError):
    """Untrusted input failed a verification check."""


class SignatureError(VerificationError):
    """A signature does not verify under the expected key."""


class UnknownAgreementError(VerificationError):
    """No installed agreement matches the id and version named."""


class SupersededAgreementError(VerificationError):
    """The agreement version named has been replaced by a newer one."""


class AgreementSignatureError(VerificationError):
    """An agreement is not signed by every member it must be signed by."""


class AgreementSuccessionError(VerificationError):
    """A new agreement version does not follow from the installed one."""


class NotAMemberError(VerificationError):
    """A party is not a member of the agreement it invokes."""


class WrongRecipientError(VerificationError):
    """The envelope is addressed to another party."""


class DecryptionError(VerificationError):
    """HPKE decryption failed: wrong key, changed header or tampered ciphertext."""


class ContentHashError(VerificationError):
    """The decrypted plaintext does not hash to the signed ``content_hash``."""


class ReceiptError(VerificationError):
    """A receipt does not match the envelope it claims to acknowledge."""


class ProofError(VerificationError):
    """A Merkle proof does not verify."""


class InclusionProofError(ProofError):
    """An inclusion proof does not lead to the expected root."""


class ConsistencyProofError(ProofError):
    """A consistency proof does not link the two tree heads."""


class NoteError(VerificationError):
    """A signed note or checkpoint is malformed or lacks a valid signature."""


class PolicyError(DetenteError):
    """The agreement's policy forbids this."""


class AgreementExpiredError(PolicyError):
    """The agreement is not valid at the time given."""


class MessageTypeNotAllowedError(PolicyError):
    """The message type is not allowed by the agreement."""


class TLPNotAllowedError(PolicyError):
    """The TLP label is above the agreement's highest allowed label."""


class PersonalDataNotAllowedError(PolicyError):
    """The content declares personal data and the agreement forbids it."""


class ExerciseNotAllowedError(PolicyError):
    """Exercise traffic is not allowed under this agreement (or vice versa)."""


class CaseTransitionError(PolicyError):
    """A case event that its current state does not allow."""


class ReplayError(DetenteError):
    """A message id or channel sequence number was already accepted."""


class StorageError(DetenteError):
    """The store failed."""


class DeliveryError(DetenteError):
    """A message could not be delivered to a peer."""


class ConfigError(DetenteError):
    """Configuration or key files are missing or invalid."""
