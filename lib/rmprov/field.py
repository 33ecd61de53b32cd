"""Field provisioning on the board: soft-AP, protocomm server, Wi-Fi join; done once joined."""

# firmware/rmboot.py runs this when the board has no Wi-Fi credentials (none in its config,
# none saved by an earlier provisioning: rmprov.saved). It behaves as ESP-IDF's
# wifi_provisioning manager with its soft-AP scheme (components/wifi_provisioning/src/
# manager.c, handlers.c, wifi_config.c, wifi_ctrl.c, v5.4.2) and ESP RainMaker's endpoints
# (esp-rainmaker v1.16.0 esp_rmaker_user_mapping.c, esp_rmaker_chal_resp.c; examples/common/
# rmaker_app_network/app_network.c):
# - an open soft-AP (the session's proof of possession protects the exchange), SSID prov_name
#   or "PROV_" and the last 3 bytes of the base MAC in lowercase hex (app_network.c's name
#   when no factory random bytes exist; the station's MAC is the base MAC), serving the
#   protocomm endpoints (rmprov.httpd) on port 80;
# - the pop: prov_pop, else the first 4 of the board's 64 stored random bytes as 8 hex digits
#   (app_network.c, POP_TYPE_RANDOM: the factory "random", which rmclaim.store keeps under the
#   same name; made now, with the radio on, when the board has none yet);
# - proto-ver: {"prov": {"ver": "v1.1", "sec_ver", "sec_patch_ver": 0, "cap": ["wifi_scan"]
#   (with "no_sec" first for security 0)}} (manager.c wifi_prov_get_info_json), and
#   "rmaker_extra": {"ver": "1.0", "cap": ["ch_resp"]} (esp_rmaker_chal_resp.c) only on a
#   claimed board whose challenge-response is on: never RainMaker's "claim" capability (the
#   board claims by itself, after provisioning);
# - the Wi-Fi state as the manager keeps it: Connecting until credentials are applied (its
#   initial state), then Connecting, Connected, or ConnectionFailed with AuthError or
#   NetworkNotFound; apply is refused (InternalError) once credentials were applied until a
#   prov-ctrl reset after a failure (reset_sm_state_on_failure). Here the join is the
#   firmware's own (rmboot's wifi step): one connect(), wifi_timeout_s for it, and only at the
#   deadline the reason, from the station's last status and a scan (rmboot.wifi_failure);
# - the credentials are kept (rmprov.saved, one NVS write) only once the board has joined with
#   them: a wrong password is never stored, and a power cut after the write boots into the
#   claim with them;
# - once Connected, the soft-AP closes 1 s after a client was told so (wifi_prov_mgr_done, its
#   cleanup_delay of 1000 ms) or 30 s after joining (CONFIG_WIFI_PROV_AUTOSTOP_TIMEOUT);
#   unlike ESP RainMaker, whose soft-AP needs a reboot after prov_timeout_s, a board here
#   closes it after prov_timeout_s (default 30 min, RainMaker's) without credentials, waits
#   out its backoff, and opens it again.
# The endpoints themselves are in rmprov.endpoints.

import time

from micropython import const

from rmprov import saved
from rmprov.errors import ProvError

IDLE = const(0)  # nothing applied yet (reported as Connecting, as the manager does)
CONNECTING = const(1)
CONNECTED = const(2)
FAILED = const(3)  # a join failed; apply refused until prov-ctrl reset
RETRY = const(4)  # failed, then reset: still reported as failed, apply allowed
AUTH_ERROR = const(0)  # WifiConnectFailedReason
NETWORK_NOT_FOUND = const(1)
_CLEANUP_MS = const(1000)
_AUTOSTOP_MS = const(30000)
_SIGN_MAX = const(5)  # challenge-response signatures per boot


def _ms():
    return time.ticks_ms()


def _since(t):
    return time.ticks_diff(time.ticks_ms(), t)


def unload(*names):
    # Drop rmclaim modules this phase loaded (the rmclaim package stays: it holds the NVS
    # handles); the claim must not find them on the heap.
    import sys

    import rmclaim

    for name in names:
        sys.modules.pop("rmclaim." + name, None)
        if name in rmclaim.__dict__:
            delattr(rmclaim, name)


def _identity(cfg):
    # (node id or None, claimed): the stored node id of a claimed board, else the MAC when
    # this board will self-claim (the node id it will get), else None (a token claim's node
    # id comes from the service).
    from rmclaim import store

    try:
        st = store.Store()
        lens = st.lengths()
        if st.is_claimed(lens):
            return str(st.get(store.KEYS.index("node_id"), lens), "utf-8"), True
    finally:
        unload("store")
    from rmclaim import chip

    try:
        ident = chip.identity()
        mode = cfg["mode"]
        auto_self = mode == "auto" and cfg["access_token"] is None
        if ident.self_claim and (mode == "self" or auto_self):
            return ident.mac, False
        return None, False
    finally:
        unload("chip")


def default_pop():
    # 8 hex digits from the board's 64 stored random bytes, made now and stored alone when
    # there are none yet (with a radio on: the soft-AP is up); the claim keeps them (it makes
    # them only when missing). Here and not in rmclaim.store, whose size the claim pays for.
    from rmclaim import store

    try:
        st = store.Store()
        slot = store.KEYS.index("random")
        lens = st.lengths()
        if lens[slot] == store.RANDOM_LEN:
            random = st.get(slot, lens)
        else:
            import os

            random = os.urandom(store.RANDOM_LEN)
            st._write([(slot, random)])  # the store's own phase write (index last)
    finally:
        unload("store")
    return "%02x%02x%02x%02x" % (random[0], random[1], random[2], random[3])


class Provisioner:
    # One provisioning window: start(), then step() until it returns True (joined and done),
    # close() in any case. cfg: the firmware's config dict; report(step, outcome, fields):
    # status lines; classify(wlan, ssid, status, timeout_ms) -> (why, detail): the firmware's
    # reason for a failed join ("wrong password" or "no AP found").

    def __init__(self, cfg, report, classify):
        self.cfg = cfg
        self.report = report
        self.classify = classify
        self.state = IDLE
        self.reason = AUTH_ERROR
        self.pending = None  # type: tuple | None  # (ssid, passphrase) of CmdSetConfig, RAM only
        self.trying = ()  # type: tuple  # the credentials applied
        self.t0 = _ms()
        self.applied_at = 0
        self.apply_ms = -1  # CmdApplyConfig to credentials stored
        self.done_at = 0
        self.done_ms = 0
        self.ap = None  # the soft-AP, once start() turned it on (sta and server come with it)
        self.node_id = None
        self.claimed = False
        self.chresp = False  # challenge-response answered this boot (claimed, not off)
        self.signed = None  # the session that got a signature, if any
        self.signed_apply = False  # ... and applied Wi-Fi credentials afterwards
        self.signs_left = _SIGN_MAX
        self.signed_at = 0
        self.scan = ()
        self.name = ""
        self.pop = ""

    def start(self):
        # What needs rmclaim's modules for a moment (the pop, the node id) comes first, before
        # the session's and the endpoints' modules fill the heap: a module loads into one
        # free block, and a heap full of others has holes, not blocks.
        import network

        cfg = self.cfg
        self.sta = sta = network.WLAN(network.WLAN.IF_STA)
        self.ap = ap = network.WLAN(network.WLAN.IF_AP)
        sta.active(True)
        ap.active(True)  # from here a radio is on: os.urandom is random, keys may be made
        mac = sta.config("mac")
        self.name = cfg["prov_name"] or "PROV_%02x%02x%02x" % (mac[3], mac[4], mac[5])
        ap.config(essid=self.name, authmode=0)  # open: the pop protects the session
        sec = cfg["prov_sec"]
        self.pop = "" if sec == 0 else cfg["prov_pop"] or default_pop()
        self.node_id, self.claimed = _identity(cfg)
        self.chresp = self.claimed and not saved.chresp_off()
        if self.chresp:
            # What a signature needs (rmprov.endpoints), loaded now while the heap is in one
            # piece (measured: loading p256 later, after the sessions' allocations, can fail
            # for want of 640 contiguous bytes at 128 KB); unloaded by close().
            from rmclaim import p256blind, store  # noqa: F401
        import gc

        gc.collect()
        from rmprov import endpoints, httpd

        server = httpd.Server(
            endpoints.handlers(self), security=sec, pop=self.pop, version=self.version
        )
        self.server = server
        server.start()
        fields = (("ssid", self.name), ("pop", self.pop or "none"), ("sec", sec))
        self.report("provisioning", "wait", fields)

    def version(self):
        # proto-ver's JSON (see the top), asked at each request: ch_resp goes once it is off
        # or spent for this boot (a client then takes the secret-key way).
        sec = self.cfg["prov_sec"]
        text = '{"prov":{"ver":"v1.1","sec_ver":%d,"sec_patch_ver":0,"cap":[%s"wifi_scan"]}' % (
            sec,
            '"no_sec",' if sec == 0 else "",
        )
        if self.chresp and self.signs_left:
            text += ',"rmaker_extra":{"ver":"1.0","cap":["ch_resp"]}'
        return text + "}"

    def apply(self):
        # CmdApplyConfig: join with the pending credentials. -> a protocomm Status.
        if self.pending is None or self.state in (CONNECTING, CONNECTED, FAILED):
            return 5  # InternalError, as the manager refuses it
        sta = self.sta
        sta.disconnect()  # whatever a failed attempt left: connect() refuses to overlap one
        self.trying = self.pending
        self.pending = None
        sta.connect(self.trying[0], self.trying[1])
        self.state = CONNECTING
        self.applied_at = _ms()
        self.signed_apply = self.signed is not None and self.signed is self.server.session
        return 0

    def reset(self, reprov):
        # prov-ctrl: reset after a failure (apply allowed again), or reprovision a board that
        # joined (its saved credentials forgotten). -> a protocomm Status.
        if reprov and self.state == CONNECTED:
            saved.forget_wifi()
            self.sta.disconnect()
        elif reprov or self.state not in (FAILED, RETRY):
            return 5
        self.state = IDLE if reprov else RETRY
        self.trying = ()
        self.done_at = 0
        return 0

    def station(self):
        # The join as CmdGetStatus reports it (WifiStationState): 0 Connected, 3 ConnectionFailed
        # (after a prov-ctrl reset too, until the next apply), else 1 Connecting.
        if self.state == CONNECTED:
            return 0
        if self.state == FAILED or self.state == RETRY:
            return 3
        return 1

    def told_connected(self):
        # A client was told Connected: the manager stops its service after cleanup_delay.
        if self.state == CONNECTED:
            left = time.ticks_diff(self.done_at, _ms())
            if left > _CLEANUP_MS:
                self.done_at = time.ticks_add(_ms(), _CLEANUP_MS)

    def step(self, wait_ms):
        # Serve requests for up to wait_ms, then move the join on. -> True once done.
        self.server.poll(wait_ms)
        if self.state == CONNECTING:
            sta = self.sta
            ssid, passphrase = self.trying
            timeout_ms = int(self.cfg["wifi_timeout_s"] * 1000)
            if sta.isconnected():
                saved.save_wifi(ssid, passphrase)
                self.apply_ms = _since(self.applied_at)
                self.state = CONNECTED
                self.done_at = time.ticks_add(_ms(), _AUTOSTOP_MS)
                if self.signed_apply:
                    saved.turn_chresp_off()  # mapped: the client went on only after verify
                    self.chresp = False
            elif _since(self.applied_at) >= timeout_ms:
                st = sta.status()
                sta.disconnect()
                why, detail = self.classify(sta, ssid, st, timeout_ms)
                self.reason = AUTH_ERROR if why == "wrong password" else NETWORK_NOT_FOUND
                self.state = FAILED
                fields = (("joined", False), ("reason", why), ("detail", detail))
                self.report("provisioning", "wait", fields)
        elif self.state == CONNECTED:
            return time.ticks_diff(self.done_at, _ms()) <= 0
        return False

    def open_ms(self):
        return _since(self.t0)

    def close(self):
        if self.ap is not None:
            server = getattr(self, "server", None)
            if server is not None:
                server.close()
            self.ap.active(False)
            self.ap = None
        unload("store", "p256blind", "p256", "csr", "asn1")


def run(cfg, led, report, classify):
    # Provision until the board has joined a network: -> (ssid, passphrase) as bytes, saved.
    # Raises ProvError when prov_timeout_s pass without working credentials (the soft-AP is
    # closed then). The LED blinks fast (100 ms on, 100 ms off) in its "provisioning" colour.
    p = Provisioner(cfg, report, classify)
    limit_ms = int(cfg["prov_timeout_s"] * 1000)
    led.state("provisioning")
    try:
        p.start()
        while not p.step(50):
            led.set((p.open_ms() // 100) % 2 == 0)
            if p.state not in (CONNECTING, CONNECTED) and p.open_ms() > limit_ms:
                raise ProvError(
                    "provisioning: no working Wi-Fi credentials within %d s; soft-AP %s closed"
                    % (limit_ms // 1000, p.name)
                )
        ip = p.sta.ifconfig()[0]
    finally:
        led.set(False)
        p.close()
    report("provisioning", "ok", (("ms", p.open_ms()), ("apply_ms", p.apply_ms), ("ip", ip)))
    return p.trying
