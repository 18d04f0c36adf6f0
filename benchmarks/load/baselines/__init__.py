"""What the node's redirects are compared with, on the same machine and load.

- `sanic_app`: the least a Sanic app can do to redirect, a dict lookup and
  a 302, with the node's worker count. The gap between it and the node is
  what the node's own work costs (L1 lookup, click record, headers).
- `nginx`: nginx answering 302 from a `map` of the same codes, the ceiling
  on this machine (run only when nginx is installed).
"""
