"""The unmodified ArcGIS API for Python (arcgis 2.4.4) against `nbexec serve --portal`.

Run by scripts/arcgis-client.sh, which starts the server. Signs in through the portal
routes, finds the Notebook Server, runs the notebook item with a parameter, waits for
the job (future=True), prints the job as JSON on stdout and checks the run's output.
Exit status: 0 when the job COMPLETED and its notebook printed the parameter.
"""

import argparse
import json
import sys
import warnings

warnings.filterwarnings("ignore")  # urllib3 complains about the unverified certificate


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--portal", required=True)
    ap.add_argument("--user", required=True)
    ap.add_argument("--password-file", required=True)
    ap.add_argument("--item", required=True)
    args = ap.parse_args()
    with open(args.password_file, encoding="utf-8") as f:
        password = f.read().strip()

    from arcgis.gis import GIS

    gis = GIS(args.portal, args.user, password, verify_cert=False, use_gen_token=True)
    print(f"signed in as {gis.users.me.username} at {gis}", file=sys.stderr)
    item = gis.content.get(args.item)
    print(f"item {item.id}: {item.title!r} ({item.type})", file=sys.stderr)
    server = gis.notebook_server[0]
    print(f"notebook server {server.url}", file=sys.stderr)
    result = server.notebooks.execute_notebook(item, parameters={"x": 1}, future=True).result()
    print(json.dumps(result, indent=1, sort_keys=True))

    if not isinstance(result, dict) or result.get("status") != "COMPLETED":
        print("FAIL: the job did not complete", file=sys.stderr)
        return 1
    # The executed notebook, through the same connection (token in the Esri header).
    out_url = (result.get("results") or {}).get("outputNotebookUrl")
    if not out_url:
        print("FAIL: the job names no output notebook", file=sys.stderr)
        return 1
    text = gis._con.get(out_url, {}, try_json=False)
    if isinstance(text, bytes):
        text = text.decode("utf-8")
    if "x is 1" not in str(text):
        print("FAIL: the output notebook does not show the parameter x = 1", file=sys.stderr)
        return 1
    print("OK: the arcgis client ran the notebook through nbexec serve", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
