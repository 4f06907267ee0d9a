#!/usr/bin/env python3
"""Checks what the real widget's run left in the local stack, and prints the
PASS/FAIL summary of tools/real-widget.sh.

    verify.py --result result.json --tenant-config config.json --answers answers.json
              --form-id ID --table TABLE --aws AWS_CLI --host-url URL
              [--wait 30] [--probe probe.json] [--summary summary.json]

The AWS CLI runs with the environment it is given (AWS_CONFIG_FILE,
AWS_SHARED_CREDENTIALS_FILE, AWS_PROFILE of the stack's administrator).
"""
import argparse
import json
import subprocess
import sys
import time
import urllib.request

COMPOSITES = ("name", "address", "phone_with_consent")
CAPITALIZED = ("text", "name", "textarea")  # the widget upper-cases their first character


def aws_json(aws, *args):
    out = subprocess.run([aws, *args, "--output", "json"], capture_output=True, text=True, timeout=60)
    if out.returncode != 0:
        raise RuntimeError(f"aws {' '.join(args[:2])} failed: {out.stderr.strip()[:500]}")
    return json.loads(out.stdout or "{}")


def plain(value):
    """A DynamoDB attribute value as plain JSON."""
    (kind, v), = value.items()
    if kind == "M":
        return {k: plain(x) for k, x in v.items()}
    if kind == "L":
        return [plain(x) for x in v]
    if kind == "N":
        return float(v) if "." in v else int(v)
    return v


def stored_item(aws, table, submission_id):
    data = aws_json(
        aws, "dynamodb", "scan", "--table-name", table,
        "--filter-expression", "submission_id = :s",
        "--expression-attribute-values", json.dumps({":s": {"S": submission_id}}),
    )
    items = data.get("Items", [])
    return {k: plain(v) for k, v in items[0].items()} if items else None


def expected_answers(form, answers):
    """Flat {stored key: value} the submission should hold, as the widget sent it."""
    expected = {}
    for field in form["fields"]:
        answer = answers.get(field["id"])
        if answer is None:
            continue
        if field.get("type") in COMPOSITES:
            for sub in field.get("subfields", []):
                value = answer.get(sub["id"], "")
                if value != "":
                    if field["type"] == "name":
                        value = value[:1].upper() + value[1:]
                    expected[sub["id"]] = value
        else:
            value = str(answer)
            if field.get("type") in CAPITALIZED:
                value = value[:1].upper() + value[1:]
            expected[field["id"]] = value
    return expected


def outbox(host_url):
    with urllib.request.urlopen(f"{host_url}/outbox", timeout=10) as response:
        return json.load(response)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--result", required=True)
    p.add_argument("--tenant-config", required=True)
    p.add_argument("--answers", required=True)
    p.add_argument("--form-id", required=True)
    p.add_argument("--table", required=True)
    p.add_argument("--aws", required=True)
    p.add_argument("--host-url", required=True)
    p.add_argument("--wait", type=float, default=30)
    p.add_argument("--probe")
    p.add_argument("--summary")
    a = p.parse_args()

    result = json.load(open(a.result, encoding="utf-8"))
    config = json.load(open(a.tenant_config, encoding="utf-8"))
    answers = {k: v for k, v in json.load(open(a.answers, encoding="utf-8")).items() if not k.startswith("_")}
    form = next(f for k, f in config["conversational_forms"].items() if f.get("form_id", k) == a.form_id)
    internal = form["notifications"]["internal"]
    name_field = next(f for f in form["fields"] if f.get("type") == "name")
    email_field = next(f for f in form["fields"] if f.get("type") == "email")
    first = answers[name_field["id"]][f"{name_field['id']}.first_name"]
    last = answers[name_field["id"]][f"{name_field['id']}.last_name"]
    email = answers[email_field["id"]]

    checks = []  # (ok, what, detail)
    notes = []

    def check(ok, what, detail=""):
        checks.append((bool(ok), what, detail))

    # 1. The widget.
    steps = result.get("steps", [])
    check(result.get("ok"), "widget: form completed and submitted",
          f"{len(steps)} steps answered, opened by {result.get('opened_by')}, CTA {result.get('cta_clicked')!r}"
          + (f"; error: {result.get('error')}" if result.get("error") else ""))
    check(len(steps) == len(form["fields"]), "widget: every step of the form was asked",
          f"{len(steps)} of {len(form['fields'])}")
    submit = result.get("submit") or {}
    submission_id = submit.get("submission_id")
    check(submission_id, "backend: submit answered form_complete",
          f"HTTP {submit.get('status')} from {submit.get('url')} (Origin {submit.get('origin')}), "
          f"submissionId {submission_id}")

    # 2. The stored submission.
    item = None
    if submission_id:
        try:
            item = stored_item(a.aws, a.table, submission_id)
        except Exception as err:  # noqa: BLE001 - reported as a failed check
            check(False, "DynamoDB: submission readable", str(err))
    stored = (item or {}).get("form_data", {})
    expected = expected_answers(form, answers)
    missing = sorted(k for k in expected if k not in stored)
    wrong = sorted(k for k in expected if k in stored and stored[k] != expected[k])
    check(item is not None, f"DynamoDB: submission in {a.table}",
          f"tenant {(item or {}).get('tenant_id')}, form {(item or {}).get('form_id')}, "
          f"status {(item or {}).get('status')}, priority {(item or {}).get('priority')}")
    check(item is not None and not missing and not wrong, "DynamoDB: every answer stored",
          f"{len(stored)} stored fields, {len(expected)} expected"
          + (f"; missing {missing}" if missing else "")
          + (f"; different {[(k, stored[k], expected[k]) for k in wrong]}" if wrong else ""))
    contact = (item or {}).get("contact", {})
    check(contact.get("first_name") == first and contact.get("last_name") == last
          and (contact.get("email") or "").lower() == email.lower(),
          "DynamoDB: contact names the applicant", json.dumps(contact, ensure_ascii=False))

    # 3. The emails fulfillment sent (the consumers run in the local host).
    team = confirmation = None
    deadline = time.time() + a.wait
    while time.time() < deadline:
        try:
            emails = outbox(a.host_url).get("emails", [])
        except Exception:  # noqa: BLE001 - the host may be busy; try again
            emails = []
        for e in emails:
            to = [t.lower() for t in e.get("to", [])]
            if any(r.lower() in to for r in internal["recipients"]) and submission_id and submission_id in e.get("body", ""):
                team = e
            if email.lower() in to:
                confirmation = e
        if team and confirmation:
            break
        time.sleep(1)
    check(team and first in team.get("subject", "") and last in team.get("subject", ""),
          "outbox: team email names the applicant",
          f"to {team.get('to')}: {team.get('subject')!r}" if team else f"none to {internal['recipients']} within {a.wait:.0f} s")
    check(confirmation, "outbox: confirmation to the applicant",
          f"to {confirmation.get('to')}: {confirmation.get('subject')!r}" if confirmation else f"none to {email} within {a.wait:.0f} s")

    if submission_id:
        try:
            after = stored_item(a.aws, a.table, submission_id) or {}
            notes.append(f"submission status after fulfillment: {after.get('status')}, "
                         f"fulfillment {json.dumps(after.get('fulfillment', {}))}")
        except Exception as err:  # noqa: BLE001
            notes.append(f"could not re-read the submission: {err}")

    # What else the widget asked of the local host that was not answered 2xx.
    for entry in result.get("network", []):
        status = entry.get("status")
        if status is None or status >= 400:
            why = " (Master_Function, not part of this backend: the widget falls back)" if "/Master_Function" in entry["url"] else ""
            notes.append(f"widget request {entry['method']} {entry['url']} (Origin {entry.get('origin')}): "
                         f"{status or entry.get('failure')} {(entry.get('response') or '')[:200]}".rstrip() + why)
    if team:
        labelled = [o.get("label") for f in form["fields"] if f.get("type") == "select"
                    for o in f.get("options", []) if o.get("value") == answers.get(f["id"])]
        raw = [answers[f["id"]] for f in form["fields"] if f.get("type") == "select"]
        if labelled and not any(l in team.get("body", "") for l in labelled if l) and all(f">{v}<" in team.get("body", "") for v in raw):
            notes.append("team email shows select answers as option values (e.g. "
                         f"{raw[0]!r}), not the labels the widget showed the applicant (e.g. {labelled[0]!r})")
    if a.probe:
        try:
            probe = json.load(open(a.probe, encoding="utf-8"))
            notes.extend(probe.get("notes", []))
        except FileNotFoundError:
            pass

    ok = all(c[0] for c in checks)
    print()
    print("=" * 72)
    for good, what, detail in checks:
        print(f"{'PASS' if good else 'FAIL'}  {what}")
        if detail:
            print(f"      {detail}")
    if notes:
        print("notes:")
        for n in notes:
            print(f"  - {n}")
    print(f"screenshot: {result.get('screenshot')}")
    print(f"{'PASS' if ok else 'FAIL'}: real widget, {a.form_id}, submission {submission_id}, "
          f"{len(stored)} stored fields"
          + (f", team {team.get('subject')!r}" if team else "")
          + (f", applicant {confirmation.get('subject')!r}" if confirmation else ""))
    print("=" * 72)
    if a.summary:
        with open(a.summary, "w", encoding="utf-8") as f:
            json.dump({
                "ok": ok, "submission_id": submission_id, "stored_fields": len(stored),
                "team_subject": team and team.get("subject"),
                "confirmation_subject": confirmation and confirmation.get("subject"),
                "contact": contact, "checks": [{"ok": c[0], "what": c[1], "detail": c[2]} for c in checks],
                "notes": notes, "screenshot": result.get("screenshot"),
            }, f, indent=2, ensure_ascii=False)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
