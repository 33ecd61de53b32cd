"""A claim's network part: initiate, the HMAC or CSR, then verify on the same TLS session."""

# A phase of rmclaim.claim (imported for each attempt's network part, then dropped).
# Initiate and verify share one TLS session while the server keeps it open; each request goes
# in three steps with only its own code on the heap (the request: api; its transfer: https;
# the reply: api), and between the two requests (the HMAC of the challenge, or a token
# claim's CSR for the node id) the session stays open while no network code is on the heap at
# all (rmclaim.heap).

from rmclaim.heap import settle, unload


def run(cfg, ev, ident, mode, uid, d, csr_cache):
    # The network part of one attempt; ident is (MAC, platform). -> (node_id, api.VerifyReply)
    token = cfg.access_token if mode == "token" else None
    conn = None
    try:
        # The TLS context first, while no other code of this part is on the heap (see connect).
        if cfg.service_url.startswith("https:"):
            conn = (None, None, _context(cfg.ca))
            unload("connect", "pem")
        # A request's arguments go in a one-item list, emptied when the request is built: none
        # of them stays on the heap while the reply is read.
        args = [(ident[0], ident[1], token)]  # type: list
        c, conn = conn, None
        got, conn = ev.run_step(
            "initiate", _call, cfg, ev, c, _initiate_request, args, _initiate_reply, (token,), True
        )
        if token is None:
            node_id = ident[0]
            got = (got[0], ev.run_step("hmac", _challenge_response, uid, got[1]))
            unload("api", "sha512")
            got = settle(got)
        else:
            unload("api")
            node_id = got = settle(got)
        if node_id not in csr_cache:
            # A token claim's node id comes with initiate (a self-claim's CSR, for the MAC,
            # is made before the network part, and again in an attempt after one that sent
            # it).
            csr_cache.clear()
            csr_cache[node_id] = ev.run_step("csr", _request_pem, d, node_id, cfg.matter)
            unload("csr", "pem", "p256", "asn1")
            csr_cache[node_id] = settle(csr_cache[node_id])
        # The CSR leaves the cache with its request: kept for a retry, it would stay on the
        # heap next to the reply (a retry makes it again, the same bytes: RFC 6979 nonces).
        csr = csr_cache.pop(node_id)
        if token is None:
            args = [(csr, cfg.matter, None, got[0], got[1])]
        else:
            args = [(csr, cfg.matter, token)]
        del csr
        c, conn = conn, None
        reply, conn = ev.run_step(
            "verify", _call, cfg, ev, c, _verify_request, args, _verify_reply, (), False
        )
        return node_id, reply
    finally:
        _close(conn)
        unload("api", "https", "connect", "pem", "sha512", "csr", "p256", "asn1")


# The api calls, each in a frame of its own (the module can leave the heap after it).


def _initiate_request(mac, platform, token):
    from rmclaim import api

    return api.initiate_request(mac, platform, token)


def _initiate_reply(reply, token):
    from rmclaim import api

    return api.initiate_reply(reply, token)


def _challenge_response(uid, challenge):
    from rmclaim import api

    return api.challenge_response(uid, challenge)


def _verify_request(csr, matter, token, auth_id=None, response=None):
    from rmclaim import api

    return api.verify_request(csr, matter, token, auth_id, response)


def _verify_reply(reply):
    from rmclaim import api

    return api.verify_reply(reply)


def _request_pem(d, node_id, matter):
    from rmclaim import csr

    return csr.request_pem(d, node_id, matter)


def _context(ca):
    from rmclaim import connect

    return connect.context(ca)


def _close(conn):
    # Close a connection https.Client.detach() handed out: its TLS and raw sockets.
    for s in conn[:2] if conn else ():
        if s is not None:
            try:
                s.close()
            except OSError:
                pass


def _send(cfg, ev, conn, req, keep):
    # One request over the connection conn (None: a new one); req is a one-item list holding
    # the request (path, headers, body), taken out of it: once it is sent only the client holds
    # it, and lets go when the reply comes, so its bytes are off the heap before the reply's
    # body is read. -> (https.Reply, the connection if keep and the server keeps it open,
    # else None)
    from rmclaim import https

    http = https.Client(cfg.service_url, cfg.ca, cfg.timeout_s, cfg.allow_insecure_http)
    http.attach(conn)
    try:
        _post(http, req)
        return http.reply(), http.detach() if keep else None
    finally:
        ev.handshakes += http.handshakes
        http.close()


def _post(http, req):
    # In a frame of its own, which is gone (and its references with it) once the request is sent.
    path, headers, body = req.pop()
    http.send("POST", path, body, headers)


def _call(cfg, ev, conn, make_request, args, read_reply, reply_args, keep):
    # One request of the claiming API in three steps, each with only its own code on the heap:
    # the request (make_request(*args.pop()): args is a one-item list, emptied here), its
    # transfer (https: the TLS session), the reply (read_reply(reply, *reply_args)). ->
    # (what the reply says, the connection left open when keep (after an initiate); a verify
    # is the last request, its connection is closed before its reply is read)
    req = [make_request(*args.pop())]
    unload("api")
    reply, conn = _send(cfg, ev, conn, req, keep)
    del req
    unload("https", "connect", "pem")
    try:
        return read_reply(reply, *reply_args), conn
    except BaseException:
        _close(conn)
        raise
