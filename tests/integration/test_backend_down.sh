#!/usr/bin/env bash
# A dead backend: tenant b.example's c2s backend is a port where nothing listens.
# b's clients get a <remote-connection-failed/> stream error quickly (STARTTLS and
# direct TLS), never a hang; tenant w.example's backend accepts but never answers: its
# clients get a stream error once backend_timeout_s (3 here) has passed; meanwhile a.example's clients log in and exchange messages
# through the same xmppfront (other tenants unaffected), before, during and after.
. "$(dirname "$0")/lib.sh"
T=backend_down
read -r P_HOLE < <(xf_free_ports 1)
XF_B_C2S_BACKEND=dead XF_W_C2S_BACKEND="127.0.0.1:$P_HOLE" XF_BACKEND_TIMEOUT=3 \
  xf_setup_standard "$T" || xf_setup_failed "$T: could not start Prosody + xmppfront"
xf_blackhole "$P_HOLE" || xf_setup_failed "$T: black-hole backend did not start"

xf_check "b.example via STARTTLS -> <remote-connection-failed/> within 5s" \
  xf_peer --port "$P_C2S" --mode starttls --to b.example --ca "$XF_CA" \
          --expect-error remote-connection-failed --within 5 --timeout 15
xf_check "b.example via direct TLS -> <remote-connection-failed/> within 5s" \
  xf_peer --port "$P_C2S_TLS" --mode direct --to b.example --ca "$XF_CA" \
          --expect-error remote-connection-failed --within 5 --timeout 15

xf_check "w.example's backend accepts but never answers -> stream error within backend_timeout_s 3 + 3" \
  xf_peer --port "$P_C2S_TLS" --mode direct --to w.example --ca "$XF_CA" \
          --expect-error 'remote-connection-failed|connection-timeout' --within 6 --timeout 15

# a.example logs in and messages while b's connections keep failing in parallel
xf_client --port "$P_C2S" --mode starttls --ca "$XF_CA" --domain a.example \
  >"$XF_TMP/a-during.out" 2>&1 &
APID=$!
BPIDS=()
xf_track "$APID"
for i in 1 2 3 4 5; do
  xf_peer --port "$P_C2S_TLS" --mode direct --to b.example --ca "$XF_CA" \
    --expect-error remote-connection-failed --within 5 --timeout 15 >"$XF_TMP/b-$i.out" 2>&1 &
  BPIDS+=($!); xf_track $!
done
wait "$APID"; ARC=$?
wait "${BPIDS[@]}"
sleep 0.5
xf_check "a.example login + message while b.example's backend is down (parallel)" \
  bash -c "cat '$XF_TMP/a-during.out'; exit $ARC"
xf_check "the 5 parallel b.example connections all got <remote-connection-failed/>" \
  bash -c "grep -h RESULT '$XF_TMP'/b-*.out; [ \$(grep -l 'RESULT ok' '$XF_TMP'/b-*.out | wc -l) = 5 ]"
xf_check "a.example via direct TLS still works" \
  xf_client --port "$P_C2S_TLS" --mode direct --ca "$XF_CA" --domain a.example
sleep 0.5
xf_check "log line: tenant=b.example with a reason=" xf_log_has "$XF_LOG" 'tenant="b.example"' reason=
xf_check "proxy still running" kill -0 "$XF_PROXY_PID"
xf_finish "$T"
