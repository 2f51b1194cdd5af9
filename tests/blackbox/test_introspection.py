"""Introspection as tools read it: graphql-js's buildClientSchema and printSchema
(what codegen, graphql-inspector and GraphiQL's Docs do) over the server's answer,
and the Relay ids of every object a client may normalise."""

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "tests" / "audit" / "introspect.mjs"


def graphql_js(base):
    if not (SCRIPT.parent / "node_modules" / "graphql").is_dir() or not shutil.which("node"):
        if os.environ.get("CI"):
            pytest.fail("tests/audit has no node_modules: .ci/run installs them (npm ci)")
        pytest.skip("run `npm ci --prefix tests/audit` (or .ci/run) for graphql-js")
    done = subprocess.run(["node", str(SCRIPT), base], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    return json.loads(done.stdout)


def test_tools_read_this_schema_as_it_is(start):
    srv = start("sqlite")
    seen = graphql_js(srv.base)
    # The schema's own description, not async-graphql's text about schemas in general.
    assert seen["description"].startswith("buildsets-graphql: Buildbot's buildsets"), seen["description"]
    assert "GRAPHQL_VALIDATION_FAILED" in seen["description"]
    assert "A GraphQL Schema defines the capabilities" not in seen["printed"]
    # No type that no field uses.
    assert "Float" not in seen["types"]
    # Every object a client may normalise has a Relay id.
    assert seen["implementsNode"] == ["Build", "BuildRequest", "Builder", "Buildset", "Patch", "SourceStamp"]
    # What a tool prints is the committed schema's description, word for word.
    committed = (ROOT / "schema.graphql").read_text()
    assert seen["description"] in committed
    # Aliases and fragments are answered the same way.
    body = srv.post("query { s: __schema { d: description ...T } } fragment T on __Schema { types { n: name } }")
    assert body["data"]["s"]["d"] == seen["description"]
    assert "Float" not in [t["n"] for t in body["data"]["s"]["types"]]
    assert "Int" in [t["n"] for t in body["data"]["s"]["types"]]


def test_patches_are_nodes(start):
    srv = start("sqlite")
    builder = srv.ok('mutation { ensureBuilder(name: "n") { builderid } }')["ensureBuilder"]["builderid"]
    added = srv.ok(
        """mutation($in: AddBuildsetInput!) { addBuildset(input: $in) {
             buildset { sourcestamps { patch { id patchid body } } } } }""",
        {"in": {"reason": "n", "builderids": [builder],
                "sourcestamps": [{"stamp": {"repository": "r", "patch": {"body": "diff --git a b\n"}}}]}},
    )
    patch = added["addBuildset"]["buildset"]["sourcestamps"][0]["patch"]
    node = srv.ok("query($id: ID!) { node(id: $id) { __typename id ... on Patch { patchid body } } }",
                  {"id": patch["id"]})["node"]
    assert node == {"__typename": "Patch", "id": patch["id"], "patchid": patch["patchid"],
                    "body": "diff --git a b\n"}
    # A standalone database has no builds: a build's id names nothing there.
    import base64
    build_id = base64.urlsafe_b64encode(b"Build:1").decode().rstrip("=")
    assert srv.ok("query($id: ID!) { node(id: $id) { id } }", {"id": build_id}) == {"node": None}
