"""Every boot: Wi-Fi from /rmclaim.json, clock sync, rmclaim.ensure_claimed(), MQTT, app.py."""

# The sequence, its status lines and LED patterns are in rmboot (lib/, deployed compiled). The
# credentials main() returns are not kept: online() reads what it needs once the claim's
# library has left the heap.
import rmboot

if rmboot.main() is not None:
    rmboot.run_app(rmboot.online())
