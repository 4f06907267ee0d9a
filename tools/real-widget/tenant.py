#!/usr/bin/env python3
"""Writes the tenant the real-widget run uses: the canonical-forms fixture
(tests/fixtures/tenant-configs/bri071351-canonical-forms.json, which holds only
its forms) plus what a live tenant also has: identity, the texts the widget
shows, a welcome chip and a branch whose CTA starts the volunteer
application, the origins allowed to use it, and the volunteer form's
notifications.

    tenant.py FIXTURE OUT_DIR --tenant-id ID --tenant-hash HASH \
        --allow-origin URL [--allow-origin URL ...] [--kb-id KB]

Writes OUT_DIR/config.json, OUT_DIR/mapping.json and, with --kb-id,
OUT_DIR/kb/*.md (a short knowledge-base document, written here).
"""
import argparse
import json
import os

FORM = "volunteer_application"

KB_DOC = """# Volunteering with BrightPath

BrightPath matches volunteers with families caring for children in foster care.
Volunteers can mentor a young person, deliver meals and groceries, or help at
events. To volunteer, start the volunteer application in this chat: it asks
for your contact details, a little about you, two references and your consent
to a background check. A coordinator follows up within a day or two.
"""


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("fixture")
    parser.add_argument("out_dir")
    parser.add_argument("--tenant-id", required=True)
    parser.add_argument("--tenant-hash", required=True)
    parser.add_argument("--allow-origin", action="append", default=[])
    parser.add_argument("--kb-id")
    args = parser.parse_args()

    with open(args.fixture, encoding="utf-8") as f:
        config = json.load(f)
    forms = config.get("conversational_forms") or {}
    if FORM not in forms:
        raise SystemExit(f"{args.fixture} has no {FORM} form")

    forms[FORM]["notifications"] = {
        "internal": {
            "enabled": True,
            "recipients": ["team@brightpath.example"],
            "subject": "New {form_title} from {first_name} {last_name}",
        },
        "applicant_confirmation": {
            "enabled": True,
            "subject": "Thanks, {first_name}!",
        },
    }

    tenant = {
        "tenant_id": args.tenant_id,
        "tenant_hash": args.tenant_hash,
        "chat_title": "BrightPath",
        "chat_subtitle": "Volunteering with families in foster care",
        "welcome_message": "Hi! Ask about volunteering with BrightPath, or start an application below.",
        "allowed_origins": args.allow_origin,
        "features": {"streaming": True, "conversational_forms": True},
        "action_chips": {
            "enabled": True,
            "show_on_welcome": True,
            "max_display": 3,
            "default_chips": [
                {
                    "label": "Volunteer with us",
                    "value": "I want to volunteer",
                    "target_branch": "volunteer_interest",
                },
                {"label": "Become a mentor", "value": "How do I become a mentor", "target_branch": "mentor_interest"},
            ],
        },
        "cta_definitions": {
            "apply_volunteer": {
                "label": "Start the volunteer application",
                "action": "start_form",
                "formId": FORM,
                "program": "bright_futures",
                "style": "primary",
            },
            "apply_mentor": {
                "label": "Apply to be a mentor",
                "action": "start_form",
                "formId": "mentor_application",
                "program": "mentorship_matches",
                "style": "primary",
            },
            "ask_volunteer_roles": {
                "label": "What do volunteers do?",
                "action": "send_query",
                "query": "What kinds of volunteering can I do?",
                "style": "secondary",
            },
        },
        "conversation_branches": {
            "volunteer_interest": {
                "detection_keywords": ["volunteer", "help out", "sign up"],
                "available_ctas": {"primary": "apply_volunteer", "secondary": ["ask_volunteer_roles"]},
            },
            "mentor_interest": {
                "detection_keywords": ["mentor", "mentorship"],
                "available_ctas": {"primary": "apply_mentor", "secondary": []},
            },
        },
        "cta_settings": {"max_ctas_per_response": 3, "branch_priority": ["volunteer_interest", "mentor_interest"]},
    }
    if args.kb_id:
        tenant["aws"] = {"knowledge_base_id": args.kb_id, "aws_region": "us-east-1"}
    # The fixture's own keys (its forms) win over nothing: it has only forms.
    tenant.update(config)

    os.makedirs(args.out_dir, exist_ok=True)
    with open(os.path.join(args.out_dir, "config.json"), "w", encoding="utf-8") as f:
        json.dump(tenant, f, indent=2, ensure_ascii=False)
    with open(os.path.join(args.out_dir, "mapping.json"), "w", encoding="utf-8") as f:
        json.dump({"tenant_id": args.tenant_id}, f)
    if args.kb_id:
        os.makedirs(os.path.join(args.out_dir, "kb"), exist_ok=True)
        with open(os.path.join(args.out_dir, "kb", "volunteering.md"), "w", encoding="utf-8") as f:
            f.write(KB_DOC)


if __name__ == "__main__":
    main()
