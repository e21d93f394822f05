"""Patch an installed dhcpkit 1.0.7 so that it runs on Python 3.8+ (tested on 3.11).
Run it with the venv's interpreter: venv/bin/python patch_dhcpkit.py [--fix-bulk-queries]"""
import pathlib
import sys
import sysconfig

PKG = pathlib.Path(sysconfig.get_paths()["purelib"]) / "dhcpkit"


def patch(rel, old, new):
    path = PKG / rel
    text = path.read_text()
    if new in text:
        print("already patched:", rel)
        return
    if text.count(old) != 1:
        sys.exit("unexpected content in %s; is this dhcpkit 1.0.7?" % rel)
    path.write_text(text.replace(old, new))
    print("patched:", rel)


# Required 1: the lq-sqlite store runs VACUUM inside the transaction opened by `with db:`.
patch("ipv6/server/extensions/leasequery/sqlite.py",
      '            db.execute("VACUUM")\n',
      '            db.commit()\n'
      '            db.isolation_level = None  # autocommit; VACUUM needs no open transaction\n'
      '            db.execute("VACUUM")\n')

# Required 2: since Python 3.8 ApplyResult() takes the pool itself, not pool._cache.
patch("ipv6/server/nonblocking_pool.py",
      "ApplyResult(self._cache, callback, error_callback)",
      "ApplyResult(self, callback, error_callback)")

if "--fix-bulk-queries" in sys.argv:
    # Optional 3: the requestor CLI's remote-id sub-command reads the wrong attribute names.
    patch("ipv6/client/test_leasequery.py",
          "RemoteIdOption(int(options.enterprise_nr), bytes.fromhex(options.remote_id))",
          "RemoteIdOption(int(getattr(options, 'enterprise-nr')), "
          "bytes.fromhex(getattr(options, 'remote-id')))")
    # Optional 4: register what RFC 5460/7653 allow but 1.0.7 never registered: RELAY_ID and
    # REMOTE_ID inside LQ_QUERY, RELAY_ID inside RELAY-FORW, CLIENT_DATA and STATUS_CODE in
    # LEASEQUERY-DATA (status 12/13 is RFC 7653), STATUS_CODE in LEASEQUERY-DONE.
    patch("ipv6/extensions/bulk_leasequery.py",
          "\nfrom dhcpkit.ipv6.options import Option\n",
          "\nfrom dhcpkit.ipv6.options import Option, StatusCodeOption\n"
          "from dhcpkit.ipv6.messages import RelayForwardMessage\n"
          "from dhcpkit.ipv6.extensions.leasequery import ClientDataOption, LQQueryOption\n"
          "from dhcpkit.ipv6.extensions.remote_id import RemoteIdOption\n")
    bulk = PKG / "ipv6/extensions/bulk_leasequery.py"
    if "LQQueryOption.add_may_contain(RelayIdOption)" not in bulk.read_text():
        with bulk.open("a") as f:
            f.write("\nLQQueryOption.add_may_contain(RelayIdOption)\n"
                    "LQQueryOption.add_may_contain(RemoteIdOption)\n"
                    "RelayForwardMessage.add_may_contain(RelayIdOption)\n"
                    "LeasequeryDataMessage.add_may_contain(ClientDataOption, max_occurrence=1)\n"
                    "LeasequeryDataMessage.add_may_contain(StatusCodeOption, max_occurrence=1)\n"
                    "LeasequeryDoneMessage.add_may_contain(StatusCodeOption, max_occurrence=1)\n")
    # Optional 5: store the relay DUID's bytes, not the DUID object.
    patch("ipv6/server/extensions/leasequery/__init__.py",
          "codecs.encode(relay_id_option.duid, 'hex')",
          "codecs.encode(relay_id_option.duid.save(), 'hex')")
    # Optional 6: remote-id lookups query the relay_ids table; use remote_ids.
    store = PKG / "ipv6/server/extensions/leasequery/sqlite.py"
    text = store.read_text()
    head, sep, tail = text.partition("    def find_client_by_remote_id(")
    body, nxt, rest = tail.partition("\n    def ")
    fixed = body.replace("FROM relay_ids WHERE relay_id=?", "FROM remote_ids WHERE remote_id=?")
    if fixed != body:
        store.write_text(head + sep + fixed + nxt + rest)
        print("patched: find_client_by_remote_id")
