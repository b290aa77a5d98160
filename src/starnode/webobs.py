"""0.1.0 import path of the WebObs uploader; it lives in :mod:`starnode.aavso.webobs`."""

from starnode.aavso.webobs import (
    Credentials,
    CredentialsError,
    UploadOutcome,
    load_credentials,
    upload,
)

__all__ = ["Credentials", "CredentialsError", "UploadOutcome", "load_credentials", "upload"]
