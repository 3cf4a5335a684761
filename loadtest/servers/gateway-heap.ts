// Imported before the rest of a load-test server: the young-generation cap `meshgate gateway`
// applies (bin/young-generation.ts), so the harness measures what users run. The server calls
// youngGenerationServing() once it listens, as the command does.
import { capYoungGeneration, GATEWAY_SEMI_SPACE_MB } from '../../bin/young-generation.ts';

export { youngGenerationServing } from '../../bin/young-generation.ts';

capYoungGeneration(GATEWAY_SEMI_SPACE_MB);
