"""The semantic query layer: requests over the registry's declared measures and dimensions (registry/semantic.py,
registry/cubes.py) compiled to parameterized SQL both warehouse backends run (compile.py); served by
POST /v1/query (api/query.py). docs/query.md explains it."""
