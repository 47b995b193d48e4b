#include <stdio.h>
#include <string.h>
#include "proxy/proof_cmd.h"

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "proof") == 0)
        return xf_proof_main(argc - 1, argv + 1);
    fprintf(stderr, "xmppfront: not yet\n");
    return 2;
}
