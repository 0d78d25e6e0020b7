"""Schemathesis hooks for scripts/schema-fuzz.sh (loaded through SCHEMATHESIS_HOOKS).

One relation of the V2 infer request cannot be written in JSON Schema: `data` holds exactly as
many elements as `shape` multiplies to. Generated requests almost never agree, so every valid one
would be refused (422) and the checks that need valid data would test nothing. For a request that
is valid against the document, this hook makes them agree the way a client would: free dimensions
become 1 except the first, the data is flattened and padded with zeros to a whole number of rows,
and the first dimension counts the rows. A request the document already refuses is left as it is,
so every negative case reaches the server unchanged.
"""

import copy

import jsonschema
import schemathesis


def _validator(ctx):
    schema = ctx.operation.schema.raw_schema["components"]["schemas"]["InferRequest"]
    return jsonschema.Draft202012Validator(schema)


def _flatten(value, out):
    if isinstance(value, list):
        for item in value:
            _flatten(item, out)
    else:
        out.append(value)


@schemathesis.hook
def map_body(ctx, body):
    if ctx.operation is None or not ctx.operation.path.endswith("/infer") or not isinstance(body, dict):
        return body
    validator = _validator(ctx)
    if not validator.is_valid(body):
        return body
    specs = ctx.operation.schema.raw_schema["components"]["schemas"]["InferRequest"]
    tensors = {t["properties"]["name"]["const"]: t for t in specs["properties"]["inputs"]["items"]["oneOf"]}
    agreed = copy.deepcopy(body)
    for tensor in agreed["inputs"]:
        dims = tensors[tensor["name"]]["properties"]["shape"]["prefixItems"]
        if not dims:
            continue
        fixed = [d.get("const") for d in dims]
        row = 1
        for d in fixed[1:]:
            row *= 1 if d is None else d
        if row == 0 or fixed[0] is not None:
            continue
        flat = []
        _flatten(tensor["data"], flat)
        rows = -(-len(flat) // row)
        flat.extend([0] * (rows * row - len(flat)))
        if rows > dims[0].get("maximum", rows):
            continue
        tensor["shape"] = [rows] + [1 if d is None else d for d in fixed[1:]]
        tensor["data"] = flat
    # Still valid, as it must be: then send it; otherwise the original goes unchanged.
    return agreed if validator.is_valid(agreed) else body
