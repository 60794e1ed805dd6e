// Setting: one global knob, `metadata.name` = the setting's name, `value` a string as Longhorn keeps it.
import { z } from 'zod';
import { type Resource, resourceSchema } from './meta.js';

export const settingSpec = z.object({ value: z.string() });
export type SettingSpec = z.infer<typeof settingSpec>;
export const settingStatus = z.object({ applied: z.boolean().default(false) });
export type SettingStatus = z.infer<typeof settingStatus>;

export const settingSchema = resourceSchema('Setting', settingSpec, settingStatus.default({ applied: false }));
export type Setting = Resource<'Setting', SettingSpec, SettingStatus>;
