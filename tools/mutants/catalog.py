"""The mutations `make mutants` tries: deliberate breakages, each with the tests that catch it.

Each mutation replaces exact text (which must occur once) in files of a scratch copy of the
repository; `expect` says what the suite should do with it today: "caught" (a test fails),
"skipped" (the test reports it compared nothing), or "later" (known to get through until other
work lands; `note` says which). A mutation whose text is no longer in the file is "stale":
update it here when the code it breaks moves.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Edit:
    """Replace `old` (which must occur exactly once in `path`) with `new`."""

    path: str
    old: str
    new: str


@dataclass(frozen=True)
class Mutation:
    name: str
    what: str
    edits: tuple[Edit, ...]
    tests: tuple[str, ...]  # pytest arguments: paths, node ids, -k expressions
    expect: str = "caught"
    note: str = ""
    env: dict[str, str] = field(default_factory=dict)


_STORE_CLAIM_NODE = """        with self.transaction() as db:
            row = db.execute(
                "SELECT user_id, claimed FROM nodes WHERE node_id = ?", (node_id,)"""

_FINISH_CHECK = """    try:
        ev.run_step("check", _check, point, node_id, reply.certificate, claim_ca)
    finally:
        unload("check", "x509", "pem", "csr", "p256", "asn1")
    from rmclaim import store

    st = store.Store()
    if st.key_pem() != key_pem:
        raise ClaimError("store: the stored key changed during the claim; nothing stored")
    ev.run_step(
        "store",
        st.save_identity,
        reply.certificate,
        node_id,
        reply.mqtt_host,
        reply.mqtt_cred_host,
    )
"""

_FINISH_STORE_FIRST = """    from rmclaim import store

    st = store.Store()
    if st.key_pem() != key_pem:
        raise ClaimError("store: the stored key changed during the claim; nothing stored")
    ev.run_step(
        "store",
        st.save_identity,
        reply.certificate,
        node_id,
        reply.mqtt_host,
        reply.mqtt_cred_host,
    )
    try:
        ev.run_step("check", _check, point, node_id, reply.certificate, claim_ca)
    finally:
        unload("check", "x509", "pem", "csr", "p256", "asn1")
"""

_WORDS_LE = """        out[4 * i] = w & 0xFF
        out[4 * i + 1] = (w >> 8) & 0xFF
        out[4 * i + 2] = (w >> 16) & 0xFF
        out[4 * i + 3] = w >> 24"""

_WORDS_BE = """        out[4 * i + 3] = w & 0xFF
        out[4 * i + 2] = (w >> 8) & 0xFF
        out[4 * i + 1] = (w >> 16) & 0xFF
        out[4 * i] = w >> 24"""

# The index blob (rmclaim_lens) written first, listing lengths of blobs not written yet.
_INDEX_FIRST = """                if final:
                    for slot, data in items:
                        lens[slot] = 0 if data is None else len(data)
                    early = bytearray(_INDEX_LEN)
                    early[0] = _LAYOUT
                    for i, n in enumerate(lens):
                        early[1 + 2 * i] = n & 0xFF
                        early[2 + 2 * i] = n >> 8
                    nvs.set_blob(_INDEX, early)
                    for slot, data in items:"""

_INDEX_LAST = """                nvs.set_blob(_INDEX, index)
        except OSError as e:"""

_POWER_CYCLE = """        since = self.mark()
        self._note(f"[power-cycle] power_cut={power_cut}")"""

# A host-side cut that always lands after the claim: wait for this boot's claimed line first.
_POWER_CYCLE_LATE = """        since = self.mark()
        if power_cut is None and self.info.state != "off":
            boot = bytes(self._console).rfind(b"rmclaim: step=config")
            self.expect(r"step=claimed ok", timeout=120, since=max(boot, 0))
        self._note(f"[power-cycle] power_cut={power_cut}")"""

_STATUS_BOOL = Edit(
    "firmware/rmboot.py",
    'return "yes" if v else "no"',
    'return "true" if v else "false"',
)

MUTATIONS: tuple[Mutation, ...] = (
    # --- caught before issue 13 ---------------------------------------------------------------
    Mutation(
        "hostname-check",
        "TLS without the hostname: wrap_socket gets no server_hostname (MicroPython's tls then "
        "refuses CERT_REQUIRED outright, so every TLS test fails)",
        (
            Edit(
                "lib/rmclaim/connect.py",
                "ctx.wrap_socket(raw, server_hostname=host, do_handshake_on_connect=False)",
                "ctx.wrap_socket(raw, do_handshake_on_connect=False)",
            ),
        ),
        ("host_tests/device/claim/test_https.py",),
    ),
    Mutation(
        "store-before-check",
        "the certificate stored before it is checked",
        (Edit("lib/rmclaim/claim.py", _FINISH_CHECK, _FINISH_STORE_FIRST),),
        ("host_tests/device/claim/test_claim.py",),
    ),
    Mutation(
        "efuse-byte-order",
        "eFuse words turned into bytes big-endian",
        (Edit("lib/rmclaim/chip.py", _WORDS_LE, _WORDS_BE),),
        ("host_tests/device/claim/test_chip.py",),
    ),
    Mutation(
        "hmac-key",
        "the challenge HMAC keyed with the challenge instead of the unique id",
        (
            Edit(
                "lib/rmclaim/api.py",
                "sha512.hmac_sha512(unique_id, challenge.encode())",
                "sha512.hmac_sha512(challenge.encode(), unique_id)",
            ),
        ),
        ("host_tests/device/claim/test_service_client.py",),
    ),
    Mutation(
        "p256-verify-inverse",
        "p256.verify inverts r instead of s",
        (Edit("lib/rmclaim/p256.py", "    w = _inv(s, n)\n", "    w = _inv(r, n)\n"),),
        ("host_tests/device/test_p256.py",),
    ),
    Mutation(
        "flash-nvs-splice",
        "rmbench flash reads the board's NVS but writes the image without it",
        (
            Edit(
                "tools/rmbench/flash.py",
                "data[lo : lo + len(piece)] = piece",
                "del lo, piece",
            ),
        ),
        ("host_tests/tools/test_flash.py",),
    ),
    Mutation(
        "cn-check",
        "a certificate whose CN is not the node id is accepted",
        (Edit("lib/rmclaim/check.py", "    if cn != node_id:\n", "    if False:\n"),),
        ("host_tests/device/claim/test_store.py", "host_tests/device/claim/test_claim.py"),
    ),
    # --- got through before issue 13 ----------------------------------------------------------
    Mutation(
        "quota-no-transaction",
        "the service counts a user's claims and claims the node outside a transaction",
        (
            Edit(
                "tools/rmbench/service/store.py",
                _STORE_CLAIM_NODE,
                _STORE_CLAIM_NODE.replace(
                    "        with self.transaction() as db:\n",
                    "        db = self._connection()\n        if True:\n",
                ),
            ),
        ),
        ("host_tests/service/test_races.py",),
    ),
    Mutation(
        "quota-deferred-transaction",
        "the service's write transactions start deferred (BEGIN), taking the lock late",
        (
            Edit(
                "tools/rmbench/service/store.py",
                'conn.execute("BEGIN IMMEDIATE")',
                'conn.execute("BEGIN")',
            ),
        ),
        ("host_tests/service/test_races.py",),
    ),
    Mutation(
        "index-before-blobs",
        "the store's index blob (rmclaim_lens) written before the blobs it lists",
        (
            Edit(
                "lib/rmclaim/store.py",
                "                if final:\n                    for slot, data in items:",
                _INDEX_FIRST,
            ),
            # ... and not again after them: the phase makes as many NVS writes as before.
            Edit(
                "lib/rmclaim/store.py",
                _INDEX_LAST,
                "                if not final:\n"
                "                    nvs.set_blob(_INDEX, index)\n"
                "        except OSError as e:",
            ),
        ),
        ("host_tests/device/claim/test_power_cut.py", "host_tests/bench/test_power_cut.py"),
    ),
    Mutation(
        "challenge-lowercase",
        "the self-claim challenge response sent as lowercase hex",
        (Edit("lib/rmclaim/api.py", ".decode().upper()", ".decode()"),),
        (
            "host_tests/device/claim/test_service_client.py",
            "host_tests/device/claim/test_claim.py::test_self_claim",
        ),
    ),
    Mutation(
        "p256-true-after-range-checks",
        "p256.verify returns True once r, s and the point pass the range checks",
        (
            Edit(
                "lib/rmclaim/p256.py",
                "        return False\n    w = _inv(s, n)\n",
                "        return False\n    return True\n",
            ),
        ),
        ("host_tests/device/test_p256.py", "-k", "wycheproof"),
    ),
    Mutation(
        "efuse-address",
        "ESP32-S3's OPTIONAL_UNIQUE_ID read one block too far (table and board profile agree)",
        (
            Edit("lib/rmclaim/chip.py", "True, 0x6000705C,", "True, 0x6000707C,"),
            Edit(
                "boards/esp32s3.toml",
                "efuse_unique_id = 0x6000705C",
                "efuse_unique_id = 0x6000707C",
            ),
        ),
        ("host_tests/device/claim/test_chip.py",),
    ),
    Mutation(
        "efuse-word-stride",
        "the four eFuse words read at consecutive byte addresses",
        (Edit("lib/rmclaim/chip.py", "machine.mem32[addr + 4 * i]", "machine.mem32[addr + i]"),),
        ("host_tests/device/claim/test_chip.py",),
    ),
    Mutation(
        "power-cut-after-claim",
        "the bench's power cut after a network step lands only once the board has claimed",
        (Edit("tools/rmbench/board.py", _POWER_CYCLE, _POWER_CYCLE_LATE),),
        ("host_tests/bench/test_power_cut.py", "-k", "network_step"),
    ),
    Mutation(
        "status-line-format",
        "status lines print booleans as true/false",
        (_STATUS_BOOL,),
        ("host_tests/bench/test_status_lines.py",),
    ),
    Mutation(
        "status-line-format-update-mode",
        "the same, with RMBENCH_UPDATE_GOLDEN=1: regenerated, and reported skipped",
        (_STATUS_BOOL,),
        ("host_tests/bench/test_status_lines.py", "-k", "first_boot"),
        expect="skipped",
        env={"RMBENCH_UPDATE_GOLDEN": "1"},
    ),
    Mutation(
        "fault-cert-other-ca",
        "the wrong_key_cert/wrong_cn_cert faults sign with another CA and send that CA",
        (
            Edit(
                "tools/rmbench/service/faults.py",
                "certs.pem(ca.device_certificate(claim_ca, key, cn)) + chain[end:]",
                "certs.pem(ca.device_certificate(other, key, cn)) + other.pem",
            ),
            Edit(
                "tools/rmbench/service/faults.py",
                '    obj["certificate"] = certs.pem(',
                "    other = ca._new_ca(claim_ca.cert.subject)\n"
                '    obj["certificate"] = certs.pem(',
            ),
        ),
        ("host_tests/service/test_faults.py", "-k", "wrong"),
    ),
    # Issue 9 (the virtual board as released firmware behaves): each was let through by the old
    # model or code.
    Mutation(
        "led-preview-spelling-only",
        "chip detection keeps the hyphen, so only the preview's ESP32-S3 spelling is matched",
        (Edit("lib/rmclaim/chip.py", 'if c not in "-_ ":', 'if c not in "_ ":'),),
        ("host_tests/tools/test_status_led.py", "-k", "every_release"),
    ),
    Mutation(
        "wifi-fail-on-first-status",
        "the firmware gives up on the first 201 instead of waiting to its deadline",
        (
            Edit(
                "firmware/rmboot.py",
                "        st = wlan.status()\n        # Slow blink",
                "        st = wlan.status()\n        if st == _STAT_NO_AP_FOUND:\n"
                "            break\n        # Slow blink",
            ),
        ),
        ("host_tests/bench/test_failures.py", "-k", "first_scan"),
    ),
    Mutation(
        "ntp-oserror-only",
        "a failed NTP sync is only an OSError (the frozen ntptime also raises ValueError, ...)",
        (
            Edit(
                "firmware/rmboot.py",
                "        except Exception as e:\n            # Any",
                "        except OSError as e:\n            # Any",
            ),
        ),
        ("host_tests/bench/test_failures.py", "-k", "ntptime"),
    ),
    Mutation(
        "ipv6-address-unchecked",
        "a getaddrinfo entry without an address is connected to (a TypeError on the board)",
        (
            Edit(
                "lib/rmclaim/connect.py",
                "    except (OSError, TypeError, ValueError) as e:",
                "    except OSError as e:",
            ),
            Edit(
                "lib/rmclaim/connect.py",
                "if not found or found[0][-1] is None:",
                "if not found:",
            ),
        ),
        ("host_tests/device/claim/test_port_errors.py",),
    ),
    Mutation(
        "deploy-any-firmware",
        "rmbench deploy writes to a board of any MicroPython version",
        (
            Edit(
                "tools/rmbench/deploy.py",
                "    check_supported(tuple(release), board=board.name)\n",
                "",
            ),
        ),
        ("host_tests/bench/test_deploy.py", "-k", "older"),
    ),
    Mutation(
        "mapping-signature-unchecked",
        "user/nodes/mapping/verify maps the node whatever the challenge_response",
        (
            Edit(
                "tools/rmbench/service/mapping.py",
                "        if not signature_valid(cert_pem, challenge.challenge.encode(), "
                "bytes.fromhex(response)):",
                "        if False:",
            ),
        ),
        (
            "host_tests/service/test_mapping.py",
            "-k",
            "wrong_answer or another_nodes_key or never_certified",
        ),
    ),
    Mutation(
        "mapping-other-users-request",
        "a user can answer (and spend) another user's mapping challenge",
        (
            Edit(
                "tools/rmbench/service/mapping.py",
                "            if challenge is None or challenge.user_id != user.user_id:",
                "            if challenge is None:",
            ),
        ),
        ("host_tests/service/test_mapping.py", "-k", "other_users_requests"),
    ),
    Mutation(
        "mapping-challenge-not-spent",
        "a wrong challenge_response leaves the mapping challenge open for another guess",
        (
            Edit(
                "tools/rmbench/service/mapping.py",
                "                self.store.spend_mapping_challenge(db, request_id)\n",
                "",
            ),
        ),
        ("host_tests/service/test_mapping.py", "-k", "spent_by_a_wrong_answer"),
    ),
    Mutation(
        "mapping-oldest-certificate",
        "the challenge-response is checked against the node's first certificate, not its last",
        (
            Edit(
                "tools/rmbench/service/store.py",
                "ORDER BY issued DESC, rowid DESC",
                "ORDER BY issued, rowid",
            ),
        ),
        ("host_tests/service/test_mapping.py", "-k", "latest_certificate"),
    ),
    Mutation(
        "mapping-secret-key-ignored",
        "a node's mapping message confirms the user's request whatever its secret key",
        (
            Edit(
                "tools/rmbench/service/mapping.py",
                "                if request.user_id == user_id and hmac.compare_digest(\n"
                "                    request.secret_key, secret_key\n"
                "                ):",
                "                if request.user_id == user_id:",
            ),
        ),
        ("host_tests/service/test_mapping.py", "-k", "does_not_agree"),
    ),
    Mutation(
        "mapping-node-first-lost",
        "a PUT user/nodes/mapping ignores the message the node already sent",
        (
            Edit(
                "tools/rmbench/service/mapping.py",
                "                and self._may_take(db, node_id, user.user_id, report.reset)\n",
                "                and False\n",
            ),
        ),
        ("host_tests/service/test_mapping.py", "-k", "node_message_then_put"),
    ),
    Mutation(
        "mapping-reset-ignored",
        "a node's message without reset takes a node another user holds",
        (
            Edit(
                "tools/rmbench/service/mapping.py",
                "        return reset or owner is None or owner == user_id",
                "        return True",
            ),
        ),
        ("host_tests/service/test_mapping.py", "-k", "reset_decides"),
    ),
    # --- the node online (MQTT, user mapping) ----------------------------------------------------
    Mutation(
        "mqtt-hostname-check",
        "the MQTT handshake without the broker's host name (MicroPython's tls then refuses "
        "CERT_REQUIRED outright: no session at all)",
        (
            Edit(
                "lib/rmnode/node.py",
                "s = self.ctx.wrap_socket(sock, server_hostname=server_hostname)",
                "s = self.ctx.wrap_socket(sock)",
            ),
        ),
        ("host_tests/mqtt/test_node.py", "-k", "announces"),
    ),
    Mutation(
        "mqtt-no-ping",
        "no keep-alive pings: the broker drops a quiet node after 1.5 keep-alive periods",
        (Edit("lib/rmnode/node.py", "                        c.ping()\n", ""),),
        ("host_tests/mqtt/test_node.py", "-k", "keepalive"),
    ),
    Mutation(
        "mqtt-old-socket-kept",
        "a reconnect leaves the last session's TLS socket open (as umqtt.simple before 1.8.0)",
        (
            Edit(
                "lib/rmnode/node.py",
                "            try:\n"
                "                c.sock.close()\n"
                "            except OSError:\n"
                "                pass\n"
                "            c.sock = None\n",
                "            pass\n",
            ),
        ),
        ("host_tests/mqtt/test_node.py", "-k", "closed_before"),
    ),
    Mutation(
        "mqtt-claim-library-kept",
        "the claim's modules stay on the heap while MQTT runs",
        (
            Edit(
                "lib/rmnode/setup.py",
                '        if name.startswith("rmclaim.") and name != "rmclaim.errors":',
                "        if False:",
            ),
        ),
        ("host_tests/mqtt/test_node.py", "-k", "announces"),
    ),
    Mutation(
        "mapping-erased-before-ack",
        "the user id and secret key are erased before the broker acknowledged the request: a "
        "power cut then loses it",
        (
            Edit(
                "lib/rmnode/mapping.py",
                '    node.publish("user/mapping", json.dumps(msg), 1, "esp_user_node_mapping")\n'
                "    _erase(nvs)\n",
                "    _erase(nvs)\n"
                '    node.publish("user/mapping", json.dumps(msg), 1, "esp_user_node_mapping")\n',
            ),
        ),
        ("host_tests/bench/test_mqtt.py", "-k", "power_cut"),
    ),
    Mutation(
        "broker-mapping-not-handed-over",
        "the broker keeps a node's mapping request from the service: the user's mapping never "
        "gets confirmed",
        (
            Edit(
                "tools/rmbench/broker/gate.py",
                "                self._hand_over(conn, node_id, pub.payload)\n",
                "                pass\n",
            ),
        ),
        ("host_tests/service/test_rainmaker_cli_node.py",),
    ),
    # --- field provisioning (lib/rmprov, issue 11) ------------------------------------------
    Mutation(
        "prov-credentials-before-join",
        "field provisioning saves the Wi-Fi credentials when they are applied, before the join",
        (
            Edit(
                "lib/rmprov/field.py",
                "        sta.connect(self.trying[0], self.trying[1])\n",
                "        sta.connect(self.trying[0], self.trying[1])\n"
                "        saved.save_wifi(self.trying[0], self.trying[1])\n",
            ),
        ),
        ("host_tests/device/prov/test_field.py", "-k", "failed_joins"),
    ),
    Mutation(
        "chresp-unblinded",
        "challenge-response multiplies G by the nonce itself (no shares)",
        (
            Edit(
                "lib/rmclaim/p256blind.py",
                "        r = _r(k, random)\n",
                "        X, _, Z = p256._mul_g(k)\n"
                "        r = X * p256._inv(Z * Z % _P, _P) % _P % n\n",
            ),
        ),
        ("host_tests/device/test_p256blind.py", "-k", "never_see"),
    ),
    Mutation(
        "chresp-no-gap",
        "challenge-response signs as fast as it is asked",
        (
            Edit(
                "lib/rmprov/endpoints.py",
                "time.ticks_diff(now, p.signed_at) >= _SIGN_GAP_MS",
                "True",
            ),
        ),
        ("host_tests/device/prov/test_field.py", "-k", "claimed_board"),
    ),
    Mutation(
        "prov-wrong-pop-unlimited",
        "a refused handshake does not shut prov-session for a while",
        (
            Edit(
                "lib/rmprov/httpd.py",
                "            if self._refusals and _since(self._shut_at) < self._shut_ms:",
                "            if False:",
            ),
        ),
        ("host_tests/device/prov/test_httpd.py", "-k", "wrong_pop"),
    ),
    Mutation(
        "prov-modules-stay",
        "rmboot leaves rmprov's modules loaded for the claim",
        (
            Edit(
                "firmware/rmboot.py",
                '            if name.startswith("rmprov."):\n'
                "                sys.modules.pop(name)\n",
                '            if name.startswith("rmprov.") and False:\n'
                "                sys.modules.pop(name)\n",
            ),
        ),
        ("host_tests/device/prov/test_field.py", "-k", "firmware_step"),
    ),
    Mutation(
        "vboard-ctrl-c-per-burst",
        "the virtual board sends one SIGINT per 50 ms burst of Ctrl-Cs even across a new "
        "interpreter (a reset or soft reboot in between): the new main.py is never interrupted",
        (
            Edit(
                "tools/rmbench/vboard/supervisor.py",
                "if self.proc.pid != self.sigint_pid or now - self.last_sigint > _SIGINT_GAP_S:",
                "if now - self.last_sigint > _SIGINT_GAP_S:",
            ),
        ),
        ("host_tests/bench/test_vboard.py", "-k", "own_ctrl_c"),
    ),
    Mutation(
        "manifest-without-data",
        "a manifest's packages ship only their modules: p256g.bin never reaches the board",
        (
            Edit(
                "tools/rmbench/manifest.py",
                '        and relative.suffix not in (".pyc", ".mpy")\n',
                '        and relative.suffix == ".py"\n',
            ),
        ),
        ("host_tests/tools/test_manifest.py",),
    ),
    Mutation(
        "deploy-without-manifest",
        "deploy also compiles every other firmware/*.py, as it did before the manifest "
        "(manifest.py itself goes to the board)",
        (
            Edit(
                "tools/rmbench/deploy.py",
                "    files: dict[str, bytes] = {}\n    for name in SOURCE_FILES:\n",
                "    files: dict[str, bytes] = {}\n"
                "    for p in sorted(manifest.parent.glob('*.py')):\n"
                "        if p.name not in SOURCE_FILES and p.name != 'rmboot.py':\n"
                "            modules.append((p, f'/lib/{p.stem}.mpy'))\n"
                "    for name in SOURCE_FILES:\n",
            ),
        ),
        ("host_tests/tools/test_manifest.py",),
    ),
)
