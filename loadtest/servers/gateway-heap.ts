// Imported before the rest of a load-test server: the heap sizing `meshgate gateway` applies (the
// young-generation cap, bin/young-generation.ts; the old generation's limit, bin/old-generation.ts),
// so the harness measures what users run. The server calls youngGenerationServing() once it
// listens, as the command does.
import { limitOldGeneration } from '../../bin/old-generation.ts';
import { capYoungGeneration, GATEWAY_SEMI_SPACE_MB } from '../../bin/young-generation.ts';

export { youngGenerationServing } from '../../bin/young-generation.ts';

capYoungGeneration(GATEWAY_SEMI_SPACE_MB);
limitOldGeneration('gateway');
