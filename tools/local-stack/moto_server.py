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

DynamoDB applies a transaction at once: no read sees half of it. moto
applies a transaction's writes one by one, unlocked, so a concurrent read
could see an idempotency record without the submission written with it.
One lock around the table operations gives DynamoDB's isolation back.
"""

import functools
import sys
import threading

from moto.awslambda.models import LambdaFunction
from moto.dynamodb.models import DynamoDBBackend
from moto.iam import access_control
from moto.server import main

access_control.IAMRequestBase.check_signature = lambda request: None


def _no_docker_client(function):
    raise AttributeError("no Docker engine: the local stack runs its functions itself")


LambdaFunction.docker_client = property(_no_docker_client)

_tables = threading.RLock()


def _isolated(operation):
    @functools.wraps(operation)
    def locked(*args, **kwargs):
        with _tables:
            return operation(*args, **kwargs)

    return locked


for _name in ("transact_write_items", "transact_get_items", "get_item", "put_item", "update_item",
              "delete_item", "query", "scan", "batch_get_item", "batch_write_item"):
    setattr(DynamoDBBackend, _name, _isolated(getattr(DynamoDBBackend, _name)))

if __name__ == "__main__":
    sys.exit(main())
