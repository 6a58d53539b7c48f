import type { Filter } from '../types.ts';

/** Keeps nodes whose status lists the requested model. */
export const servesModel: Filter = {
  name: 'serves-model',
  keep: (c, req) => c.status?.models.some((m) => m.name === req.model) ?? false,
};
