'use strict';
// Loads the handler named by _HANDLER once, at init, with Lambda's error types.
//
// "app.handler" is export `handler` of app.js, app.mjs or app.cjs under LAMBDA_TASK_ROOT;
// "src/api/app.handler" looks in src/api/; "app.routes.get" is export `routes`, property `get`.
// For each name the first file that exists wins: the name itself (a file without an extension,
// loaded as CommonJS), then .js, .mjs, .cjs. A .js file is an ES module when the nearest
// package.json says "type": "module" (as Node decides), else CommonJS; .mjs is always ESM (loaded
// with import(), so top-level await works), .cjs always CommonJS. Loading runs the module's
// top-level code, once per runtime process.

const fs = require('fs');
const path = require('path');
const { pathToFileURL } = require('url');
const { Fault } = require('./errors');

/** "dir/app.a.b" -> {dir: "dir", file: "app", exportPath: ["a", "b"]}. */
function parseHandler(spec) {
  const base = path.posix.basename(spec);
  const dot = base.indexOf('.');
  const file = base.slice(0, dot);
  const exportPath = base.slice(dot + 1).split('.');
  if (dot < 1 || exportPath.some((part) => part === '')) {
    throw new Fault(
      'Runtime.MalformedHandlerName',
      `Bad handler '${spec}': expected 'file.export', e.g. 'index.handler'`,
    );
  }
  if (spec.split('/').includes('..') || path.posix.isAbsolute(spec)) {
    throw new Fault(
      'Runtime.MalformedHandlerName',
      `Bad handler '${spec}': the file must be under the task root`,
    );
  }
  return { dir: path.posix.dirname(spec), file, exportPath };
}

function isFile(p) {
  try {
    return fs.statSync(p).isFile();
  } catch {
    return false;
  }
}

/** "module" or "commonjs": the "type" of the package.json nearest to dir. */
function packageType(dir) {
  for (;;) {
    const manifest = path.join(dir, 'package.json');
    if (isFile(manifest)) {
      try {
        return JSON.parse(fs.readFileSync(manifest, 'utf8')).type === 'module' ? 'module' : 'commonjs';
      } catch {
        return 'commonjs'; // Node would fail on it later, with its own message
      }
    }
    const parent = path.dirname(dir);
    if (parent === dir) {
      return 'commonjs';
    }
    dir = parent;
  }
}

/** The file to load for a base path, and how: {file, esm}; null when there is none. */
function findModule(base) {
  if (isFile(base)) {
    return { file: base, esm: false };
  }
  if (isFile(`${base}.js`)) {
    return { file: `${base}.js`, esm: packageType(path.dirname(base)) === 'module' };
  }
  if (isFile(`${base}.mjs`)) {
    return { file: `${base}.mjs`, esm: true };
  }
  if (isFile(`${base}.cjs`)) {
    return { file: `${base}.cjs`, esm: false };
  }
  return null;
}

function classify(err) {
  if (err instanceof SyntaxError) {
    return new Fault('Runtime.UserCodeSyntaxError', `${err.name}: ${err.message}`, err);
  }
  if (err && (err.code === 'MODULE_NOT_FOUND' || err.code === 'ERR_MODULE_NOT_FOUND')) {
    return new Fault('Runtime.ImportModuleError', `${err.name}: ${err.message}`, err);
  }
  return err; // the module's own error, under its own type
}

async function loadHandler(spec, taskRoot) {
  const { dir, file, exportPath } = parseHandler(spec);
  const moduleName = dir === '.' ? file : `${dir}/${file}`;
  const found = findModule(path.resolve(taskRoot, dir, file));
  if (found === null) {
    throw new Fault(
      'Runtime.ImportModuleError',
      `Error: Cannot find module '${moduleName}' (no ${moduleName}.js, .mjs or .cjs in ${taskRoot})`,
    );
  }
  let loaded;
  try {
    loaded = found.esm ? await import(pathToFileURL(found.file).href) : require(found.file);
  } catch (err) {
    throw classify(err);
  }
  let handler = loaded;
  for (const part of exportPath) {
    handler = handler === null || handler === undefined ? undefined : handler[part];
  }
  const full = `${moduleName}.${exportPath.join('.')}`;
  if (handler === undefined || handler === null) {
    throw new Fault('Runtime.HandlerNotFound', `${full} is undefined or not exported`);
  }
  if (typeof handler !== 'function') {
    throw new Fault('Runtime.HandlerNotFound', `${full} is not a function`);
  }
  return handler;
}

module.exports = { loadHandler, parseHandler };
