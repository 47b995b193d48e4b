/* proof_cmd: `xmppfront proof ...`, the operator's command line onto certs/.
   argv[0] is "proof". Returns the process exit code: 0 match/success, 1 no-match,
   2 bad input. */
#ifndef XF_PROOF_CMD_H
#define XF_PROOF_CMD_H
int xf_proof_main(int argc, char **argv);
#endif
