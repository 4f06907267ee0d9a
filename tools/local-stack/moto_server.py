"""moto in server mode, as the local stack runs it.

With IAM enforced, moto checks each request's SigV4 signature by signing it
again, from what it parsed rather than from the bytes that were sent: form
bodies (AWS Query, e.g. SNS Publish) are re-encoded, and escaped path
segments (SES v2 identities such as noreply%40picasso.ai) are decoded, so
correctly signed requests fail with SignatureDoesNotMatch. The signature
check is therefore skipped. Everything else about IAM stays: the access key
must belong to a user, and that user's policies decide every action.
"""

import sys

from moto.iam import access_control
from moto.server import main

access_control.IAMRequestBase.check_signature = lambda request: None

if __name__ == "__main__":
    sys.exit(main())
