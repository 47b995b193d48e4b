/* placeholder until the registry lands */
#include "tenants/registry.h"
