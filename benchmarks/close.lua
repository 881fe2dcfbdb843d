-- close.lua: every wrk request asks the server to close the connection after
-- its response ("Connection: close"), so wrk opens a new connection per
-- request. Over https:// wrk resumes the TLS session on each reconnection
-- (the ticket of the connection's previous handshake): run.sh's
-- tls_resumed_wrk_c50 cell.
wrk.headers["Connection"] = "close"
