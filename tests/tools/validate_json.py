#!/usr/bin/python3
"""Validates JSON files against a JSON Schema (draft 2020-12).

Usage: validate_json.py SCHEMA FILE...

Prints every error with the file and the JSON path of the offending value. Exit status:
0 every file is valid, 1 a file is invalid or unreadable, 2 usage error (wrong arguments,
unreadable or invalid schema, python3-jsonschema missing).
"""

import json
import sys


def json_path(error):
    """The JSON path of the failing value, e.g. $.metrics.ttft_seconds.value."""
    path = "$"
    for part in error.absolute_path:
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    return path


def load_json(path):
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def main(argv):
    if len(argv) < 3 or argv[1] in ("-h", "--help"):
        print("usage: validate_json.py SCHEMA FILE...", file=sys.stderr)
        return 2
    try:
        import jsonschema
    except ImportError:
        print("validate_json.py: python3-jsonschema is not installed", file=sys.stderr)
        return 2
    schema_path = argv[1]
    try:
        schema = load_json(schema_path)
        validator_class = jsonschema.validators.validator_for(
            schema, default=jsonschema.Draft202012Validator)
        validator_class.check_schema(schema)
    except (OSError, ValueError) as e:
        print(f"{schema_path}: cannot read schema: {e}", file=sys.stderr)
        return 2
    except jsonschema.exceptions.SchemaError as e:
        print(f"{schema_path}: invalid schema at {json_path(e)}: {e.message}", file=sys.stderr)
        return 2
    validator = validator_class(schema)

    failed = False
    for path in argv[2:]:
        try:
            doc = load_json(path)
        except (OSError, ValueError) as e:
            print(f"{path}: cannot read JSON: {e}")
            failed = True
            continue
        errors = sorted(validator.iter_errors(doc), key=lambda e: list(map(str, e.absolute_path)))
        for e in errors:
            print(f"{path}: {json_path(e)}: {e.message}")
        if errors:
            failed = True
        else:
            print(f"{path}: valid")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
