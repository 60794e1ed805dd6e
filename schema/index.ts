// The schema: each file registers its types and fields with the builder; this one only imports them.
import { builder } from './builder.js';
import './condition.js';
import './volume.js';

export const schema = builder.toSchema();
