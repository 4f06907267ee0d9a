"""moto in server mode, as the local stack runs it.

With IAM enforced, moto checks each request's SigV4 signature by signing it
again, from what it parsed rather than from the bytes that were sent: form
bodies (AWS Query, e.g. SNS Publish) are re-encoded, and escaped path
segments (SES v2 identities such as noreply%40picasso.ai) are decoded, so
correctly signed requests fail with SignatureDoesNotMatch. The signature
check is therefore skipped. Everything else about IAM stays: the access key
must belong to a user, and that user's policies decide every action.

The state dump (/moto-api/data.json, read by the local host's /outbox and
/healthz) reads every attribute of every model. A registered Lambda
function's `docker_client` raises DockerException without a Docker engine,
which fails the whole dump; the emulator's Lambda runs no code here
(`use_docker` is false), so the attribute reads as absent instead.
"""

import sys

from moto.awslambda.models import LambdaFunction
from moto.iam import access_control
from moto.server import main

access_control.IAMRequestBase.check_signature = lambda request: None


def _no_docker_client(function):
    raise AttributeError("no Docker engine: the local stack runs its functions itself")


LambdaFunction.docker_client = property(_no_docker_client)

if __name__ == "__main__":
    sys.exit(main())
