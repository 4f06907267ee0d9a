"""moto in server mode, as the local stack runs it.

With IAM enforced, moto checks each request's SigV4 signature by signing it
again, from what it parsed rather than from the bytes that were sent: form
bodies (AWS Query, e.g. SNS Publish) are re-encoded, and escaped path
segments (SES v2 identities such as noreply%40picasso.ai) are decoded, so
correctly signed requests fail with SignatureDoesNotMatch. The signature
check is therefore skipped. Everything else about IAM stays: the access key
must belong to a user, and that user's policies decide every action.

The state dump (/moto-api/data.json, read by tests) reads every attribute of
every model. A registered Lambda function's `docker_client` raises
DockerException without a Docker engine, which fails the whole dump; the
emulator's Lambda runs no code here (`use_docker` is false), so the attribute
reads as absent instead.

DynamoDB applies a transaction at once: no read sees half of it. moto
applies a transaction's writes one by one, unlocked, so a concurrent read
could see an idempotency record without the submission written with it.
One lock around the table operations gives DynamoDB's isolation back. To
undo a failed transaction moto copied each whole table it wrote to; here it
keeps only the items the transaction touches (a submit's cost no longer
grows with the table).

A long run stays bounded:
- moto keeps every model object it ever created (for the dump), deleted
  queue messages and every temporary DynamoDB item included. Here it keeps
  them weakly: the dump shows what is still alive, and the rest is freed.
- Of sent emails and SMS, archived events and log events only the newest
  LIMITS are kept; what is dropped is counted (GET /_picasso/stats).

Routes of our own, answered before moto sees the request (no IAM, like
moto's own /moto-api):
- GET /_picasso/health: {"status": "ok"}, touching no state (the host's /healthz).
- GET /_picasso/outbox?limit=50&offset=0: the captured emails and SMS,
  newest first, one page, with what was kept and dropped (the host's /outbox).
- GET /_picasso/stats: the limits, what was dropped, the state dumps served,
  and this process's resident memory.
- POST /_picasso/limits {"emails": 2}: changes limits (tests).
"""

import copy
import functools
import gc
import json
import sys
import threading
import urllib.parse
import weakref

import moto.core.models as core_models
import moto.dynamodb.models as dynamodb_models
import moto.moto_api._internal.models as moto_api_models
from moto.awslambda.models import LambdaFunction
from moto.core import base_backend, model_instances
from moto.dynamodb.models import DynamoDBBackend
from moto.dynamodb.models.table import Table
from moto.dynamodb.responses import DynamoHandler
from moto.events.models import Archive
from moto.iam import access_control
from moto.logs.models import LogStream
from moto.moto_server.werkzeug_app import DomainDispatcherApplication
from moto.server import main
from moto.ses.models import SESBackend, ses_backends
from moto.sns.models import SNSBackend, sns_backends

access_control.IAMRequestBase.check_signature = lambda request: None


def _dynamodb_resource(handler):
    """The ARN AWS authorizes a DynamoDB call against: the table, or the
    index a Query or Scan names (`table/T/index/I`, which a grant on the
    table alone does not cover). moto asks every DynamoDB call about `*`.
    Calls that name several tables (transactions, batches) stay on `*`."""
    body = handler.body  # moto has parsed the JSON body by now
    if isinstance(body, (str, bytes)):
        try:
            body = json.loads(body or "{}")
        except ValueError:
            return "*"
    table = body.get("TableName") if isinstance(body, dict) else None
    if not isinstance(table, str) or not table:
        return "*"
    arn = f"arn:aws:dynamodb:{handler.region}:{handler.current_account}:table/{table}"
    index = body.get("IndexName")
    return f"{arn}/index/{index}" if isinstance(index, str) and index else arn


DynamoHandler._determine_resource = _dynamodb_resource


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


class _TablesNotCopied:
    """`copy` for moto.dynamodb.models, except that a whole table is not deep-copied.

    moto deep-copies every table a transaction writes to, to roll it back on
    failure: each submit copied the whole submissions table, so submits slowed
    down as the table grew. `_undo_on_failure` keeps the items the transaction
    touches instead."""

    def __getattr__(self, name):
        return getattr(copy, name)

    @staticmethod
    def deepcopy(value, memo=None):
        return value if isinstance(value, Table) else copy.deepcopy(value, memo)


dynamodb_models.copy = _TablesNotCopied()


def _undo_on_failure(transact_write_items):
    @functools.wraps(transact_write_items)
    def undoable(self, transact_items):
        before = []
        for operation in (op for entry in transact_items for op in entry.values() if isinstance(op, dict)):
            table = self.tables.get(operation.get("TableName"))
            if table is None:
                continue
            key = operation.get("Key") or {attribute: operation.get("Item", {}).get(attribute)
                                           for attribute in (table.hash_key_attr, table.range_key_attr) if attribute}
            try:
                hash_key, range_key = self.get_keys_value(table, key)
                item = copy.deepcopy(table.get_item(hash_key, range_key))
            except Exception:  # an invalid key: moto refuses the transaction before any write
                continue
            before.append((table, hash_key, range_key, item))
        try:
            return transact_write_items(self, transact_items)
        except Exception:
            for table, hash_key, range_key, item in reversed(before):
                items, slot = (table.items, hash_key) if range_key is None else (table.items[hash_key], range_key)
                if item is None:
                    items.pop(slot, None)
                else:
                    items[slot] = item
            raise

    return undoable


DynamoDBBackend.transact_write_items = _undo_on_failure(DynamoDBBackend.transact_write_items)

for _name in ("transact_write_items", "transact_get_items", "get_item", "put_item", "update_item",
              "delete_item", "query", "scan", "batch_get_item", "batch_write_item"):
    setattr(DynamoDBBackend, _name, _isolated(getattr(DynamoDBBackend, _name)))


class _Alive:
    """The instances of one model class that are still referenced, oldest first.

    Stands in for moto's `instances_tracked` list, which holds every instance forever."""

    def __init__(self, instances=()):
        self._lock = threading.RLock()
        self._refs = []
        self._alive = 0
        for instance in instances:
            self.append(instance)

    def append(self, instance):
        try:
            ref = weakref.ref(instance)
        except TypeError:  # a class without weak references: kept, as moto keeps it
            ref = lambda: instance  # noqa: E731
        with self._lock:
            self._refs.append(ref)
            if len(self._refs) > 2 * self._alive + 64:
                seen = len(self._refs)
                alive = [r for r in self._refs[:seen] if r() is not None]
                self._refs[:seen] = alive
                self._alive = len(alive)

    def __iter__(self):
        with self._lock:
            refs = list(self._refs)
        return (instance for instance in (r() for r in refs) if instance is not None)


_track_class = base_backend.InstanceTrackerMeta.__new__


def _track_weakly(meta, name, bases, dct):
    cls = _track_class(meta, name, bases, dct)
    if name != "BaseModel":
        cls.instances_tracked = _Alive()
    return cls


def _reset_model_data():
    for models in model_instances.model_data.values():
        for model in models.values():
            model.instances_tracked = _Alive()


base_backend.InstanceTrackerMeta.__new__ = staticmethod(_track_weakly)
for _models in model_instances.model_data.values():
    for _model in _models.values():
        _model.instances_tracked = _Alive(_model.instances_tracked)
model_instances.reset_model_data = _reset_model_data
core_models.reset_model_data = _reset_model_data
moto_api_models.reset_model_data = _reset_model_data

# How many of each are kept: the newest. Sent emails and SMS per account and
# region, archived events per archive, log events per log stream.
LIMITS = {"emails": 1000, "sms": 1000, "archived_events": 5000, "log_events": 5000}
DROPPED = dict.fromkeys(LIMITS, 0)
STATE_DUMPS = [0]
_counting = threading.Lock()


def _count_dropped(kind, count):
    with _counting:
        DROPPED[kind] += count


class _Newest(list):
    """A list that keeps its newest LIMITS[kind] entries (still a list for the dump)."""

    def __init__(self, kind):
        super().__init__()
        self.kind = kind
        self._lock = threading.Lock()

    def append(self, item):
        with self._lock:
            super().append(item)
            self._trim()

    def extend(self, items):
        with self._lock:
            super().extend(items)
            self._trim()

    def __iadd__(self, items):
        self.extend(items)
        return self

    def _trim(self):
        excess = len(self) - LIMITS[self.kind]
        if excess > 0:
            del self[:excess]
            _count_dropped(self.kind, excess)


def _keep_newest(cls, attribute, kind):
    init = cls.__init__

    @functools.wraps(init)
    def bounded(self, *args, **kwargs):
        init(self, *args, **kwargs)
        setattr(self, attribute, _Newest(kind))

    cls.__init__ = bounded


_keep_newest(SESBackend, "sent_messages", "emails")
_keep_newest(Archive, "events", "archived_events")
_keep_newest(LogStream, "events", "log_events")

_publish = SNSBackend.publish
_sms = threading.Lock()


@functools.wraps(_publish)
def _publish_keeping_newest_sms(self, *args, **kwargs):
    message_id = _publish(self, *args, **kwargs)
    with _sms:
        while len(self.sms_messages) > LIMITS["sms"]:
            oldest, _ = self.sms_messages.popitem(last=False)
            self.sms_message_objects.pop(oldest, None)
            _count_dropped("sms", 1)
    return message_id


SNSBackend.publish = _publish_keeping_newest_sms


def _email(message):
    entry = {"id": getattr(message, "id", None), "from": message.source}
    if hasattr(message, "raw_data"):
        return {**entry, "to": message.destinations, "raw": message.raw_data}
    if hasattr(message, "subject"):
        to = message.destinations.get("ToAddresses") if isinstance(message.destinations, dict) else None
        return {**entry, "to": to, "subject": message.subject, "body": message.body}
    return {**entry, "to": message.destinations, "template": getattr(message, "template", None)}


def outbox(limit, offset):
    """The captured emails and SMS, newest first: one page of each."""
    emails = [m for _, _, backend in ses_backends.iter_backends() for m in list(backend.sent_messages)]
    sms = [(i, to, text) for _, _, backend in sns_backends.iter_backends()
           for i, (to, text) in list(backend.sms_messages.items())]
    page = slice(offset, offset + limit)
    with _counting:
        dropped = {"emails": DROPPED["emails"], "sms": DROPPED["sms"]}
    answer = {
        "emails": [_email(m) for m in emails[::-1][page]],
        "sms": [{"id": i, "to": to, "message": text} for i, to, text in sms[::-1][page]],
        "offset": offset,
        "limit": limit,
        "kept": {"emails": len(emails), "sms": len(sms)},
        "dropped": dropped,
    }
    if any(dropped.values()):
        answer["note"] = (f"older entries were dropped: the emulator keeps the newest {LIMITS['emails']} "
                          f"emails and {LIMITS['sms']} SMS")
    return answer


def _resident_kib():
    try:
        with open("/proc/self/status") as status:
            return next(int(line.split()[1]) for line in status if line.startswith("VmRSS:"))
    except (OSError, StopIteration, ValueError):
        return None


def stats():
    with _counting:
        return {"limits": dict(LIMITS), "dropped": dict(DROPPED), "state_dumps": STATE_DUMPS[0],
                "rss_kib": _resident_kib()}


class BadRequest(ValueError):
    pass


def _number(query, name, default, low, high):
    values = query.get(name)
    if not values:
        return default
    try:
        number = int(values[0])
    except ValueError:
        raise BadRequest(f"{name} must be a whole number") from None
    if not low <= number <= high:
        raise BadRequest(f"{name} must be between {low} and {high}")
    return number


def _set_limits(environ):
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        changes = json.loads(environ["wsgi.input"].read(length) or b"{}")
    except ValueError:
        raise BadRequest("the body must be a JSON object of limits") from None
    if not isinstance(changes, dict):
        raise BadRequest("the body must be a JSON object of limits")
    for kind, limit in changes.items():
        if kind not in LIMITS or not isinstance(limit, int) or isinstance(limit, bool) or limit < 0:
            raise BadRequest(f"{kind}: a limit is one of {sorted(LIMITS)} and a whole number >= 0")
    with _counting:
        LIMITS.update(changes)
    return stats()


def _ours(environ):
    """(status, body) for a /_picasso/ route."""
    method, path = environ.get("REQUEST_METHOD"), environ.get("PATH_INFO")
    query = urllib.parse.parse_qs(environ.get("QUERY_STRING", ""))
    try:
        if (method, path) == ("GET", "/_picasso/health"):
            return "200 OK", {"status": "ok"}
        if (method, path) == ("GET", "/_picasso/outbox"):
            return "200 OK", outbox(_number(query, "limit", 50, 1, 1000), _number(query, "offset", 0, 0, sys.maxsize))
        if (method, path) == ("GET", "/_picasso/stats"):
            return "200 OK", stats()
        if (method, path) == ("POST", "/_picasso/limits"):
            return "200 OK", _set_limits(environ)
    except BadRequest as error:
        return "400 Bad Request", {"error": str(error), "code": "bad_request"}
    return "404 Not Found", {"error": f"no route {method} {path}", "code": "not_found"}


_dispatch = DomainDispatcherApplication.__call__


def _call(self, environ, start_response):
    path = environ.get("PATH_INFO", "")
    if path.startswith("/_picasso/"):
        status, body = _ours(environ)
        data = json.dumps(body).encode()
        start_response(status, [("Content-Type", "application/json"), ("Content-Length", str(len(data)))])
        return [data]
    if path == "/moto-api/data.json":
        with _counting:
            STATE_DUMPS[0] += 1
        gc.collect()  # objects only a reference cycle keeps are gone from the dump too
    return _dispatch(self, environ, start_response)


DomainDispatcherApplication.__call__ = _call

if __name__ == "__main__":
    sys.exit(main())
