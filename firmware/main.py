"""Every boot: Wi-Fi from /rmclaim.json, clock sync, rmclaim.ensure_claimed(), then app.py."""

# The sequence, its status lines and LED patterns are in rmboot (lib/, deployed compiled).
import rmboot

_creds = rmboot.main()
if _creds is not None:
    rmboot.run_app(_creds)
