#include <stdio.h>
#include "proxy/proof_cmd.h"
int xf_proof_main(int argc, char **argv) { (void)argc; (void)argv; fputs("invalid not implemented\n", stdout); return 2; }
