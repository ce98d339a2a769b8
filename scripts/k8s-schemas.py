#!/usr/bin/env python3
"""Writes the strict, standalone JSON schemas kubeconform validates
deploy/k8s against, from the Kubernetes definitions that the pinned
kubeconform module ships (fixtures/cache: its cached copy of
kubernetes-json-schema's _definitions.json), so that validation needs no
network.

usage: k8s-schemas.py DEFINITIONS_JSON OUT_DIR

One file per kind we deploy, named as kubeconform's
-schema-location 'DIR/{{ .ResourceKind }}{{ .KindSuffix }}.json' looks it up
(deployment-apps-v1.json, service-v1.json, ...). Standalone: every $ref is
inlined. Strict: objects with properties get additionalProperties: false
(as openapi2jsonschema --strict does), so a misspelt field is an error.
Descriptions are dropped to keep the files small. Output is deterministic.
"""
import json
import os
import sys

KINDS = [
    ("io.k8s.api.apps.v1.Deployment", "deployment-apps-v1"),
    ("io.k8s.api.batch.v1.Job", "job-batch-v1"),
    ("io.k8s.api.core.v1.ConfigMap", "configmap-v1"),
    ("io.k8s.api.core.v1.PersistentVolumeClaim", "persistentvolumeclaim-v1"),
    ("io.k8s.api.core.v1.Secret", "secret-v1"),
    ("io.k8s.api.core.v1.Service", "service-v1"),
    ("io.k8s.api.policy.v1.PodDisruptionBudget", "poddisruptionbudget-policy-v1"),
]


def resolve(node, defs, stack):
    if isinstance(node, list):
        return [resolve(x, defs, stack) for x in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        name = node["$ref"].rsplit("/", 1)[-1]
        if name in stack:
            # Recursive types (JSONSchemaProps) are not in what we deploy.
            return {}
        return resolve(defs[name], defs, stack + [name])
    out = {}
    for k, v in node.items():
        if k == "description":
            continue
        if k in ("properties", "patternProperties", "definitions"):
            out[k] = {pk: resolve(pv, defs, stack) for pk, pv in v.items()}
        else:
            out[k] = resolve(v, defs, stack)
    if "properties" in out and "additionalProperties" not in out:
        out["additionalProperties"] = False
    return out


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    with open(sys.argv[1]) as f:
        defs = json.load(f)["definitions"]
    os.makedirs(sys.argv[2], exist_ok=True)
    for name, file in KINDS:
        if name not in defs:
            sys.exit(f"{sys.argv[1]}: no definition {name}")
        schema = resolve(defs[name], defs, [name])
        schema["$schema"] = "http://json-schema.org/schema#"
        with open(os.path.join(sys.argv[2], file + ".json"), "w") as f:
            json.dump(schema, f, indent=1, sort_keys=True)
            f.write("\n")


if __name__ == "__main__":
    main()
