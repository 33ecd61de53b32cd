"""The boot sequence main.py runs: Wi-Fi (config or provisioning), clock, claim, MQTT, app."""

# Deployed compiled (/lib/rmboot.mpy): main.py stays a few lines, so booting does not compile
# this on the board's heap.

# Status lines are an API (host_tests/bench/golden/): one line per step,
#   rmclaim: step=<step> <outcome> key=value ...
# outcome is ok, error, wait (backoff), skip or run; values holding spaces are "quoted". Steps:
# config, provisioning (only when the config names no Wi-Fi), wifi, time, the claim library's
# (identity, efuse, key, csr, initiate, hmac, verify, check, store), backoff, claimed (the
# last line of the claim: node_id, stored, attempts, ms since boot), then online()'s mqtt,
# nodeconfig, mapping (and backoff), then app. An error line names its class, the one the
# status LED shows.
#
# Status LED: the config's status_led ("rgb:PIN" an addressable WS2812 driven with the frozen
# neopixel module, "gpio:PIN" a plain LED, "none"), else the chip's DevKit LED (rmclaim.chip's
# table, from boards/*.toml). Patterns: provisioning = fast blink (100 ms on, 100 ms off) while
# the soft-AP waits for a client; connecting = slow blink (500 ms on, 500 ms off) while Wi-Fi
# associates and the clock syncs; claiming = steady on; claimed = 200 ms dark, three short
# flashes (100/100 ms), then off; an error = N flashes of 150 ms (250 ms apart) between 800 ms
# of dark, repeated while waiting to retry: no-wifi 2, unreachable 3, rejected 4, quota 5,
# config 6, device 7. An RGB LED shows them in the state's colour: provisioning violet,
# connecting blue, claiming amber, claimed green, error red.
#
# A board that cannot claim keeps trying (Ctrl-C stops it and leaves the REPL): each round
# reconnects what is down, waits as rmclaim.backoff says (exponential from backoff_base_s to
# backoff_cap_s of the config, never sooner than the service's Retry-After; quota errors, and
# errors a retry cannot fix, such as a broken config, at the cap), and retries. The backoff line
# says whether retrying can help (retryable=yes|no).

import gc
import time

from micropython import const

_CONFIG = "/rmclaim.json"
_NTP_TRIES = const(3)
_MIN_YEAR = const(2025)  # an RTC before this was never set: TLS would refuse every certificate

# An RGB status LED's colour per state (r, g, b), dim: a DevKit's WS2812 at full power dazzles.
_COLORS = (
    ("provisioning", (24, 0, 40)),
    ("connecting", (0, 0, 40)),
    ("claiming", (40, 24, 0)),
    ("claimed", (0, 40, 0)),
    ("error", (48, 0, 0)),
)
_DARK = (0, 0, 0)
_FLASHES = (
    ("no-wifi", 2),
    ("unreachable", 3),
    ("rejected", 4),
    ("quota", 5),
    ("config", 6),
    ("device", 7),
)
# The error class of each rmclaim exception type (by name: no import of the library needed).
_CLASSES = (
    ("QuotaExceeded", "quota"),
    ("ChallengeRejected", "rejected"),
    ("PlatformRejected", "rejected"),
    ("Unauthorized", "rejected"),
    ("BadCertificate", "rejected"),
    ("BadSignature", "rejected"),
    ("NetworkError", "unreachable"),
    ("ServiceUnavailable", "unreachable"),
    ("MalformedReply", "unreachable"),
    ("TLSError", "unreachable"),
    ("ConfigError", "config"),
    ("UnsupportedChip", "config"),
)
_STAT_WRONG_PASSWORD = const(202)  # network.STAT_WRONG_PASSWORD: reason 202 or 205
_STAT_NO_AP_FOUND = const(201)  # and 210-212: no AP (within the RSSI/auth thresholds)


class Failure(Exception):
    # A failed round of the boot sequence: the step, the error class (LED, status line), the
    # reason, the service's Retry-After if any, whether retrying can help on its own (a config
    # or device error needs someone to act: retried only at the backoff cap); `printed` once
    # its error line is out.
    def __init__(self, step, cls, msg, retry_after=None, printed=False, retryable=True):
        super().__init__(msg)
        self.step = step
        self.cls = cls
        self.msg = msg
        self.retry_after = retry_after
        self.printed = printed
        self.retryable = retryable

    def report(self):
        if not self.printed:
            status(self.step, "error", (("class", self.cls), ("msg", self.msg)))
            self.printed = True


def _value(v):
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return "%.2f" % v
    s = str(v)
    if not s or " " in s or '"' in s or "=" in s:
        return '"' + s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ") + '"'
    return s


def status(step, outcome, fields=()):
    # fields: ((key, value), ...) in the order they are printed.
    line = "rmclaim: step=" + step + " " + outcome
    for key, value in fields:
        line += " " + key + "=" + _value(value)
    print(line)


def _default_led():
    # (kind, pin) of the chip's DevKit LED, from rmclaim.chip's table ("", 0: none).
    import os

    from rmclaim import UnsupportedChip, chip

    try:
        info = chip.lookup(os.uname().machine)
        return info.led_kind, info.led_pin
    except UnsupportedChip:
        return "", 0
    finally:
        _unload("chip")


class LED:
    # spec: the config's status_led ("rgb:48", "gpio:2", "none"), or None for the chip's LED.
    def __init__(self, spec=None):
        if spec is None:
            kind, pin = _default_led()
        else:
            kind, _, pin = spec.partition(":")
            pin = int(pin) if pin else 0
        self.np = None
        self.pin = None
        self.color = _DARK
        self.shown = None
        from machine import Pin

        if kind == "rgb":
            import neopixel

            self.np = neopixel.NeoPixel(Pin(pin), 1)
            self.set(False)
        elif kind == "gpio":
            self.pin = Pin(pin, Pin.OUT, value=0)

    def state(self, name):
        # The colour the next `set(True)` shows (an RGB LED only).
        for state, color in _COLORS:
            if state == name:
                self.color = color

    def set(self, on):
        if self.np is not None:
            color = self.color if on else _DARK
            if color != self.shown:  # one write per change, as a GPIO pin changes level
                self.np[0] = color
                self.np.write()
                self.shown = color
        elif self.pin is not None:
            self.pin.value(1 if on else 0)

    def off(self):
        self.set(False)

    def blink(self, on_ms, off_ms):
        self.set(True)
        time.sleep_ms(on_ms)
        self.set(False)
        time.sleep_ms(off_ms)

    def flashes(self, cls):
        for name, n in _FLASHES:
            if name == cls:
                return n
        return 7

    def error_wait(self, cls, seconds):
        # The error pattern, repeated until `seconds` have passed (at least once through):
        # N flashes with 800 ms dark before and after each group, so a group never merges
        # with what the LED shows before or after the wait.
        n = self.flashes(cls)
        end = time.ticks_add(time.ticks_ms(), int(seconds * 1000))
        self.state("error")
        self.set(False)
        time.sleep_ms(800)
        while True:
            for _ in range(n):
                self.blink(150, 250)
            time.sleep_ms(550)  # with the last flash's 250 ms: 800 ms dark
            if time.ticks_diff(end, time.ticks_ms()) <= 0:
                return


def _ms(t0):
    return time.ticks_diff(time.ticks_ms(), t0)


def _unload(name):
    # Drop an rmclaim module once its job is done, so its code leaves the heap (as the library
    # itself does between its phases).
    import sys

    import rmclaim

    sys.modules.pop("rmclaim." + name, None)
    if name in rmclaim.__dict__:
        delattr(rmclaim, name)


def load_config():
    # -> the validated config as a plain dict (no object of the config module stays alive).
    t0 = time.ticks_ms()
    from rmclaim import ConfigError, config

    try:
        settings = config.as_dict(config.load(_CONFIG))
    except ConfigError as e:
        raise Failure("config", "config", str(e), retryable=False) from e
    finally:
        _unload("config")
    settings["mqtt_ca"] = None  # online() reads it again: not held through the claim (~1.2 KB)
    mode = settings["mode"]
    if mode == "auto" and settings["access_token"] is not None:
        mode = "auto+token"
    status("config", "ok", (("ms", _ms(t0)), ("mode", mode), ("service", settings["service_url"])))
    return settings


def wifi(cfg, led):
    # cfg: the config dict. The firmware's Wi-Fi driver retries a requested connection by
    # itself until disconnect() (ports/esp32/network_wlan.c), and status() on the way is not
    # final: a first scan that missed the access point shows 201 before the next attempt joins,
    # and a wrong WPA2 password usually shows only STAT_CONNECTING (its reason, a 4-way
    # handshake timeout, has no status of its own). So: one connect(), wait to the deadline,
    # and only then say why, from the last status and, with the station idle (a scan during an
    # attempt returns nothing), a scan for the network.
    t0 = time.ticks_ms()
    import network

    if not hasattr(network, "WLAN"):
        status("wifi", "skip", (("ms", _ms(t0)), ("reason", "no-wlan")))
        return
    wlan = network.WLAN(network.WLAN.IF_STA)
    wlan.active(True)
    if wlan.isconnected():
        status("wifi", "ok", (("ms", _ms(t0)), ("ip", wlan.ifconfig()[0]), ("tries", 0)))
        return
    ssid = cfg["wifi_ssid"]
    if not ssid:
        raise Failure("wifi", "no-wifi", "wifi: no wifi_ssid in " + _CONFIG)
    led.state("connecting")
    wlan.disconnect()  # whatever a soft reset left under way: connect() refuses to overlap one
    wlan.connect(ssid, cfg["wifi_password"] or "")
    timeout_ms = int(cfg["wifi_timeout_s"] * 1000)
    start = time.ticks_ms()
    st = wlan.status()
    while _ms(start) < timeout_ms:
        if wlan.isconnected():
            status("wifi", "ok", (("ms", _ms(t0)), ("ip", wlan.ifconfig()[0]), ("tries", 1)))
            return
        st = wlan.status()
        # Slow blink while associating: 500 ms on, 500 ms off.
        led.set((_ms(start) // 500) % 2 == 0)
        time.sleep_ms(50)
    wlan.disconnect()
    why, detail = wifi_failure(wlan, ssid, st, timeout_ms)
    msg = "wifi: %s joining %r (%s)" % (why, ssid, detail)
    raise Failure("wifi", "no-wifi", msg)


def wifi_failure(wlan, ssid, st, timeout_ms):
    # Why a join that ran to its deadline failed, from its last status and (with the station
    # disconnected) a scan: -> ("wrong password" | "no AP found", detail). Also field
    # provisioning's reason for CmdGetStatus (AuthError, NetworkNotFound). ssid: str or bytes.
    detail = "status %d after %d s" % (st, timeout_ms // 1000)
    if st == _STAT_WRONG_PASSWORD:
        return "wrong password", detail
    if st == _STAT_NO_AP_FOUND or 210 <= st <= 212:
        return "no AP found", detail
    want = ssid if isinstance(ssid, bytes) else ssid.encode()
    seen = False
    for ap in wlan.scan():
        seen = seen or ap[0] == want
    detail += "; the network is in range" if seen else "; no such network in range"
    return ("wrong password" if seen else "no AP found"), detail


def provision(cfg, led):
    # A config without Wi-Fi gets it from field provisioning (lib/rmprov): the credentials an
    # earlier provisioning saved, else the soft-AP until a client gives working ones (the
    # station is then joined). rmprov's modules, and what it loaded of rmclaim, leave the heap
    # before the claim: the two never share it.
    import network

    if cfg["wifi_ssid"] or not hasattr(network, "WLAN"):
        return
    import sys

    t0 = time.ticks_ms()
    try:
        from rmprov import field, saved

        creds = saved.wifi()
        if creds is not None:
            status("provisioning", "skip", (("ms", _ms(t0)), ("reason", "saved")))
        else:
            creds = field.run(cfg, led, status, wifi_failure)
    except ImportError as e:
        raise Failure("provisioning", "config", "provisioning: %s" % e, retryable=False) from e
    except Exception as e:
        if type(e).__name__ == "ProvError":
            raise Failure("provisioning", "no-wifi", str(e), retryable=False) from e
        raise
    finally:
        # Out of sys.modules and out of the package too: a stale pointer to the package (the
        # collector is conservative) must not keep its modules alive.
        pkg = sys.modules.pop("rmprov", None)
        for name in list(sys.modules):
            if name.startswith("rmprov."):
                sys.modules.pop(name)
                if pkg is not None and name[7:] in pkg.__dict__:
                    delattr(pkg, name[7:])
        pkg = None
        gc.collect()
    cfg["wifi_ssid"], cfg["wifi_password"] = creds  # bytes: an SSID need not be text


def clock(led):
    t0 = time.ticks_ms()
    import ntptime

    err = None
    led.state("connecting")
    for attempt in range(1, _NTP_TRIES + 1):
        led.set(attempt % 2 == 1)
        try:
            ntptime.settime()
            status("time", "ok", (("ms", _ms(t0)), ("year", time.localtime()[0])))
            return
        except Exception as e:
            # Any exception is a failed sync: the frozen ntptime raises OSError, but also
            # ValueError on a short reply, IndexError when getaddrinfo finds nothing, and
            # Exception("Unsupported epoch") (micropython-lib ntptime 0.1.1).
            err = e
            time.sleep_ms(500)
    if time.localtime()[0] >= _MIN_YEAR:
        status("time", "skip", (("ms", _ms(t0)), ("reason", "ntp-failed-rtc-set")))
        return
    msg = "time: NTP sync failed %d times (%s)" % (_NTP_TRIES, err)
    raise Failure("time", "unreachable", msg)


class Reporter:
    # The claim library's on_event hook: a status line per finished step, the LED on while
    # claiming. `failed` records that the failing step already printed its error line;
    # `stored` whether the identity was already in NVS (no claim needed).
    def __init__(self, led):
        self.led = led
        self.failed = False
        self.stored = False

    def __call__(self, step, outcome, info):
        if step == "claimed":
            self.stored = bool(info.get("stored"))
        elif outcome == "start":
            self.led.state("claiming")
            self.led.set(True)
        elif outcome == "ok":
            status(step, "ok", (("ms", info.get("ms", 0)),))
        elif outcome == "error":
            self.failed = True
            fields = (
                ("ms", info.get("ms", 0)),
                ("class", error_class(info.get("kind", ""))),
                ("kind", info.get("kind", "")),
                ("msg", info.get("error", "")),
            )
            status(step, "error", fields)


def error_class(kind):
    for name, cls in _CLASSES:
        if name == kind:
            return cls
    return "device"


def claim(cfg, led):
    import rmclaim

    # One library attempt per round: this loop owns the retries, so the LED can show why.
    settings = dict(cfg)
    settings["max_attempts"] = 1
    # Wi-Fi is the firmware's: provisioned credentials may be bytes (an SSID need not be text).
    settings["wifi_ssid"] = settings["wifi_password"] = None
    reporter = Reporter(led)
    try:
        return rmclaim.ensure_claimed(settings, reporter), reporter.stored
    except rmclaim.ClaimError as e:
        kind = type(e).__name__
        raise Failure(
            "claim", error_class(kind), str(e), e.retry_after, reporter.failed, e.retryable
        ) from e


def backoff_s(cfg, round_no, failure):
    # The library's retry policy (rmclaim.backoff): exponential with full jitter, quota
    # errors and errors a retry cannot fix wait the cap (someone has to act), never sooner
    # than the service's Retry-After.
    from rmclaim import backoff

    try:
        base = cfg["backoff_base_s"] if cfg is not None else 2
        cap = cfg["backoff_cap_s"] if cfg is not None else 300
        patient = failure.cls == "quota" or not failure.retryable
        return backoff.delay_s(base, cap, round_no, failure.retry_after, patient)
    finally:
        _unload("backoff")


def online():
    # The step after the claim: the node's MQTT connection (rmnode), when the config names the
    # broker's CA (mqtt_ca). The claim's library leaves the heap first (rmnode drops it), and
    # its TLS session is closed by then: a board has no RAM for two. Status lines: mqtt ok
    # (connected), nodeconfig ok (the node config acknowledged), mapping ok (the user-node
    # mapping request acknowledged, when field onboarding stored one); an error line, then a
    # backoff line, per failed round; "mqtt skip" without mqtt_ca. -> the connected rmnode.Node,
    # the stored credentials when MQTT is off, or None when max_attempts rounds failed.
    import rmclaim
    from rmclaim import ConfigError, config

    try:
        cfg = config.as_dict(config.load(_CONFIG))  # read again: the claim did not need it
    except ConfigError as e:
        status("mqtt", "error", (("class", "config"), ("msg", str(e))))
        return None
    finally:
        _unload("config")
    if cfg["mqtt_ca"] is None:
        status("mqtt", "skip", (("reason", "no-mqtt_ca"),))
        return rmclaim.load_credentials()
    led = LED(cfg["status_led"])
    cfg = None  # rmnode reads the file again and keeps only what it needs
    import rmnode

    try:
        return rmnode.start(_CONFIG, status, led)
    except rmnode.NotReady as e:  # nothing to connect with
        status("mqtt", "error", (("class", e.cls), ("msg", str(e))))
    except rmnode.NodeError:
        pass  # max_attempts rounds failed: rmnode said so ("mqtt fail")
    except rmclaim.ClaimError as e:  # the stored identity could not be read
        status("mqtt", "error", (("class", "device"), ("msg", str(e))))
    return None


def run_app(node):
    # app.py's main(node): the connected rmnode.Node (or, without MQTT, the stored
    # credentials); then, for a Node, its connection is kept for good (keep-alive, params).
    if node is None:
        return
    import os

    try:
        os.stat("/app.py")
        found = True
    except OSError:
        found = False
    if found:
        status("app", "run")
        import app  # type: ignore[import-not-found]  # the user's, on the board only

        if hasattr(app, "main"):
            app.main(node)
    if hasattr(node, "run"):
        node.run()


def main():
    t0 = time.ticks_ms()
    led = LED()
    cfg = None
    round_no = 0
    while True:
        round_no += 1
        step = "config"
        # Each round starts from a collected heap; the config is read again only after it
        # failed (reading it allocates where the last round's garbage was).
        gc.collect()
        try:
            if cfg is None:
                cfg = load_config()
                if cfg["status_led"] is not None:
                    led.off()
                    led = LED(cfg["status_led"])
            step = "provisioning"
            provision(cfg, led)
            step = "wifi"
            wifi(cfg, led)
            step = "time"
            clock(led)
            step = "claim"
            creds, stored = claim(cfg, led)
            break
        except Failure as f:
            failure = f
        except Exception as e:  # a boot loop must outlive any one failure (not Ctrl-C)
            msg = "%s: %s" % (type(e).__name__, e)
            failure = Failure(step, "device", msg, retryable=False)
        failure.report()
        limit = cfg["max_attempts"] if cfg is not None else 0
        if limit and round_no >= limit:
            status("claim", "fail", (("class", failure.cls), ("rounds", round_no)))
            led.error_wait(failure.cls, 0)
            return None
        delay = backoff_s(cfg, round_no, failure)
        fields = (("s", delay), ("class", failure.cls), ("round", round_no))
        status("backoff", "wait", fields + (("retryable", failure.retryable),))
        led.error_wait(failure.cls, delay)
    done = (("node_id", creds.node_id), ("stored", stored), ("rounds", round_no), ("ms", _ms(t0)))
    led.set(False)
    led.state("claimed")
    time.sleep_ms(200)
    for _ in range(3):
        led.blink(100, 100)
    status("claimed", "ok", done)  # after the flashes: the LED is settled when this shows
    return creds
