// declarative.groovy FILE... checks Jenkinsfiles as far as it can without a
// Jenkins, with the Groovy that Jenkins runs them with (2.4):
//
//  - it compiles each file as a script, through class generation: syntax,
//    variable scopes and every class named (Jenkins classes a file may name
//    are stubbed below);
//  - it walks the declarative structure as Jenkins' declarative linter does
//    for the rules written here: one pipeline block, its sections and the
//    required ones, stages with exactly one of steps, stages or parallel,
//    only steps (no Groovy statements) outside script blocks, and the known
//    words of agent, options, triggers, parameters, environment, when and
//    post;
//  - every call of a bare name must name a step or symbol of the plugins
//    listed below, a method of the file, or a variable of it: a typo fails
//    here rather than at 2 a.m.;
//  - the script of every sh step written as a constant must parse (sh -n).
//
// It prints FILE:LINE: problem for each problem, "ok FILE" for a clean file,
// and exits 1 when any file has a problem.
import org.codehaus.groovy.ast.ASTNode
import org.codehaus.groovy.ast.ClassCodeVisitorSupport
import org.codehaus.groovy.ast.ModuleNode
import org.codehaus.groovy.ast.Parameter
import org.codehaus.groovy.ast.expr.ArgumentListExpression
import org.codehaus.groovy.ast.expr.BinaryExpression
import org.codehaus.groovy.ast.expr.ClosureExpression
import org.codehaus.groovy.ast.expr.ConstantExpression
import org.codehaus.groovy.ast.expr.DeclarationExpression
import org.codehaus.groovy.ast.expr.Expression
import org.codehaus.groovy.ast.expr.GStringExpression
import org.codehaus.groovy.ast.expr.MethodCallExpression
import org.codehaus.groovy.ast.expr.TupleExpression
import org.codehaus.groovy.ast.expr.VariableExpression
import org.codehaus.groovy.ast.stmt.BlockStatement
import org.codehaus.groovy.ast.stmt.ExpressionStatement
import org.codehaus.groovy.ast.stmt.Statement
import org.codehaus.groovy.control.CompilationFailedException
import org.codehaus.groovy.control.CompilationUnit
import org.codehaus.groovy.control.CompilerConfiguration
import org.codehaus.groovy.control.Phases
import org.codehaus.groovy.control.SourceUnit
import org.codehaus.groovy.control.messages.ExceptionMessage
import org.codehaus.groovy.control.messages.SyntaxErrorMessage

// Stubs of the Jenkins classes a Jenkinsfile may name, one package each.
STUBS = [
    '''package org.jenkinsci.plugins.credentialsbinding.impl
       class CredentialNotFoundException extends IOException {}''',
    '''package org.jenkinsci.plugins.workflow.steps
       class FlowInterruptedException extends InterruptedException {}''',
    '''package hudson
       class AbortException extends IOException {}''',
]

class Check {
    // Steps of Jenkins core and of the plugins in the Jenkinsfile's list
    // (Pipeline, Git, Credentials Binding, Pipeline Utility Steps, JUnit,
    // Timestamper), and a few common others.
    static final Set<String> STEPS = '''
        archiveArtifacts bat build catchError checkout cleanWs deleteDir dir echo emailext error
        fileExists findFiles fingerprint git input isUnix junit library load lock mail milestone
        node parallel powershell properties pwd pwsh readFile readJSON readProperties readYaml
        retry script sh sleep stage stash step timeout timestamps tool unstable unstash
        waitUntil warnError withCredentials withEnv wrap writeFile writeJSON writeYaml
    '''.split() as Set

    // Symbols that stand for a describable in a step's arguments: credential
    // bindings, parameters, SCMs.
    static final Set<String> SYMBOLS = '''
        booleanParam certificate choice credentials file gitUsernamePassword password
        scmGit sshUserPrivateKey string text usernameColonPassword usernamePassword
    '''.split() as Set

    static final Set<String> SECTIONS = 'agent environment libraries options parameters post stages tools triggers'.split() as Set
    static final Set<String> STAGE_SECTIONS = 'agent environment failFast input matrix options parallel post stages steps tools when'.split() as Set
    static final Set<String> AGENTS = 'any none label node docker dockerfile kubernetes'.split() as Set
    static final Set<String> OPTIONS = '''
        ansiColor buildDiscarder checkoutToSubdirectory disableConcurrentBuilds disableRestartFromStage
        disableResume newContainerPerStage overrideIndexTriggers parallelsAlwaysFailFast
        preserveStashes quietPeriod retry skipDefaultCheckout skipStagesAfterUnstable timeout timestamps
    '''.split() as Set
    static final Set<String> TRIGGERS = 'cron pollSCM upstream'.split() as Set
    static final Set<String> PARAMETERS = 'booleanParam choice credentials file password run string text'.split() as Set
    static final Set<String> CONDITIONS = '''
        allOf anyOf beforeAgent beforeInput beforeOptions branch buildingTag changeRequest changelog
        changeset environment equals expression not tag triggeredBy
    '''.split() as Set
    static final Set<String> POST = 'aborted always changed cleanup failure fixed notBuilt regression success unstable unsuccessful'.split() as Set

    String file
    List<String> problems = []
    Set<String> known = [] as Set // methods and variables of the file
    Set<ASTNode> reported = Collections.newSetFromMap(new IdentityHashMap<ASTNode, Boolean>())

    void problem(ASTNode n, String msg) {
        reported << n
        problems << "${file}:${n?.lineNumber > 0 ? n.lineNumber : 1}: ${msg}"
    }

    // A statement that is a call of a bare name (a DSL word), or null.
    static MethodCallExpression dslCall(Statement s) {
        if (s instanceof ExpressionStatement && s.expression instanceof MethodCallExpression) {
            MethodCallExpression m = (MethodCallExpression) s.expression
            if (m.implicitThis && m.methodAsString) {
                return m
            }
        }
        return null
    }

    static List<Expression> args(MethodCallExpression m) {
        return m.arguments instanceof TupleExpression ? ((TupleExpression) m.arguments).expressions : [m.arguments]
    }

    static ClosureExpression body(MethodCallExpression m) {
        List<Expression> a = args(m)
        return a && a[-1] instanceof ClosureExpression ? (ClosureExpression) a[-1] : null
    }

    static List<Statement> statements(ClosureExpression c) {
        return c.code instanceof BlockStatement ? ((BlockStatement) c.code).statements : [c.code]
    }

    // calls checks that every statement of c is a call of one of words
    // (any word when words is null) and returns them.
    List<MethodCallExpression> calls(ClosureExpression c, String where, Set words) {
        List<MethodCallExpression> out = []
        for (Statement s in statements(c)) {
            MethodCallExpression m = dslCall(s)
            if (m == null) {
                problem(s, "${where} may hold only ${words == null ? 'steps' : 'its own words'}, not this statement")
            } else if (words != null && !(m.methodAsString in words)) {
                problem(m, "${where}: unknown ${m.methodAsString} (known: ${words.sort().join(', ')})")
            } else {
                out << m
            }
        }
        return out
    }

    void pipeline(ModuleNode module) {
        List<MethodCallExpression> pipelines = module.statementBlock.statements.collect { dslCall(it) }.findAll { it?.methodAsString == 'pipeline' }
        if (pipelines.size() != 1) {
            problem(module.statementBlock, "want exactly one pipeline block, found ${pipelines.size()}")
            return
        }
        ClosureExpression c = body(pipelines[0])
        if (c == null) {
            problem(pipelines[0], 'pipeline needs a block')
            return
        }
        Map<String, MethodCallExpression> seen = [:]
        for (MethodCallExpression m in calls(c, 'pipeline', SECTIONS)) {
            if (seen.containsKey(m.methodAsString)) {
                problem(m, "pipeline has two ${m.methodAsString} sections")
            }
            seen[m.methodAsString] = m
            section(m, 'pipeline')
        }
        for (String required in ['agent', 'stages']) {
            if (!seen.containsKey(required)) {
                problem(pipelines[0], "pipeline lacks its ${required} section")
            }
        }
    }

    // section checks a section of the pipeline or of a stage (where says
    // which); the words only a stage has are the stage's to check.
    void section(MethodCallExpression m, String where) {
        String name = m.methodAsString
        ClosureExpression c = body(m)
        if (name == 'agent') {
            agent(m)
            return
        }
        if (c == null) {
            problem(m, "${where}: ${name} needs a block")
            return
        }
        switch (name) {
            case 'stages':
                Set<String> names = [] as Set
                for (MethodCallExpression s in calls(c, "${where} stages", ['stage'] as Set)) {
                    stage(s, names)
                }
                if (names.isEmpty()) {
                    problem(m, "${where}: stages holds no stage")
                }
                break
            case 'options':
                calls(c, "${where} options", OPTIONS)
                break
            case 'triggers':
                calls(c, 'triggers', TRIGGERS)
                break
            case 'parameters':
                for (MethodCallExpression p in calls(c, 'parameters', PARAMETERS)) {
                    if (!(args(p)[0] instanceof org.codehaus.groovy.ast.expr.MapExpression)) {
                        problem(p, "parameter ${p.methodAsString} takes named arguments (name: ..., defaultValue: ...)")
                    }
                }
                break
            case 'environment':
                environment(c)
                break
            case 'post':
                post(c)
                break
            case 'when':
                when(m)
                break
            case 'steps':
                if (steps(c, "${where} steps").isEmpty()) {
                    problem(m, "${where} has no step")
                }
                break
        }
    }

    void agent(MethodCallExpression m) {
        List<Expression> a = args(m)
        if (a.size() == 1 && a[0] instanceof VariableExpression && ((VariableExpression) a[0]).name in ['any', 'none']) {
            return
        }
        ClosureExpression c = body(m)
        if (c == null) {
            problem(m, 'agent takes any, none or a block')
            return
        }
        calls(c, 'agent', AGENTS)
    }

    void stage(MethodCallExpression m, Set<String> names) {
        List<Expression> a = args(m)
        if (a.size() != 2 || !(a[0] instanceof ConstantExpression) || body(m) == null) {
            problem(m, "stage takes a name in quotes and a block")
            return
        }
        String name = ((ConstantExpression) a[0]).value
        if (!names.add(name)) {
            problem(m, "two stages are named '${name}'")
        }
        List<String> kinds = []
        for (MethodCallExpression s in calls(body(m), "stage '${name}'", STAGE_SECTIONS)) {
            if (s.methodAsString in ['steps', 'stages', 'parallel', 'matrix']) {
                kinds << s.methodAsString
            }
            section(s, "stage '${name}'")
        }
        if (kinds.size() != 1) {
            problem(m, "stage '${name}' needs exactly one of steps, stages, parallel or matrix, has ${kinds ?: 'none'}")
        }
    }

    void when(MethodCallExpression m) {
        ClosureExpression c = body(m)
        if (c == null) {
            problem(m, 'when needs a block')
            return
        }
        for (MethodCallExpression cond in calls(c, 'when', CONDITIONS)) {
            if (cond.methodAsString in ['not', 'allOf', 'anyOf']) {
                when(cond)
            }
        }
    }

    void environment(ClosureExpression c) {
        for (Statement s in statements(c)) {
            Expression e = s instanceof ExpressionStatement ? ((ExpressionStatement) s).expression : null
            if (!(e instanceof BinaryExpression) || ((BinaryExpression) e).operation.text != '=' ||
                    !(((BinaryExpression) e).leftExpression instanceof VariableExpression)) {
                problem(s, 'environment may hold only NAME = value')
                continue
            }
            BinaryExpression b = (BinaryExpression) e
            String name = ((VariableExpression) b.leftExpression).name
            if (!(name ==~ /[A-Za-z_][A-Za-z0-9_]*/)) {
                problem(s, "environment: ${name} is not a variable name")
            }
            Expression v = b.rightExpression
            if (!(v instanceof ConstantExpression || v instanceof GStringExpression ||
                    v instanceof MethodCallExpression && ((MethodCallExpression) v).implicitThis)) {
                problem(s, "environment: the value of ${name} must be quoted or a function call")
            }
        }
    }

    void post(ClosureExpression c) {
        for (MethodCallExpression cond in calls(c, 'post', POST)) {
            if (body(cond) == null) {
                problem(cond, "post ${cond.methodAsString} needs a block")
            } else {
                steps(body(cond), "post ${cond.methodAsString}")
            }
        }
    }

    // steps checks a block of steps: calls of bare names, the blocks of
    // block steps likewise, anything inside script.
    List<MethodCallExpression> steps(ClosureExpression c, String where) {
        List<MethodCallExpression> out = calls(c, where, null)
        for (MethodCallExpression m in out) {
            if (!(m.methodAsString in STEPS)) {
                problem(m, "${where}: ${m.methodAsString} is not a step (call a method of the file inside script)")
            }
            ClosureExpression inner = body(m)
            if (inner != null && m.methodAsString != 'script') {
                steps(inner, "${where} ${m.methodAsString}")
            }
        }
        return out
    }

    // names checks that every call of a bare name in the file names a step, a
    // symbol, or a method or variable of the file.
    void names(ModuleNode module) {
        module.methods.each { known << it.name; it.parameters.each { Parameter p -> known << p.name } }
        def collect = new ClassCodeVisitorSupport() {
            protected SourceUnit getSourceUnit() { null }
            void visitDeclarationExpression(DeclarationExpression e) {
                if (e.leftExpression instanceof VariableExpression) {
                    known << ((VariableExpression) e.leftExpression).name
                }
                super.visitDeclarationExpression(e)
            }
            void visitClosureExpression(ClosureExpression e) {
                e.parameters?.each { Parameter p -> known << p.name }
                super.visitClosureExpression(e)
            }
        }
        def check = new ClassCodeVisitorSupport() {
            protected SourceUnit getSourceUnit() { null }
            void visitMethodCallExpression(MethodCallExpression m) {
                String n = m.methodAsString
                if (m.implicitThis && n && !(n in STEPS || n in SYMBOLS || n in known || isDeclarative(n) || m in reported)) {
                    problem(m, "${n} is neither a step nor a method or variable of this file")
                }
                super.visitMethodCallExpression(m)
            }
        }
        for (v in [collect, check]) {
            module.statementBlock.visit(v)
            module.methods.each { it.code?.visit(v) }
        }
    }

    // shells checks the syntax of every sh step's script written as a
    // constant, with sh -n: the shell is the other language of the file.
    void shells(ModuleNode module) {
        def visitor = new ClassCodeVisitorSupport() {
            protected SourceUnit getSourceUnit() { null }
            void visitMethodCallExpression(MethodCallExpression m) {
                if (m.implicitThis && m.methodAsString == 'sh') {
                    Expression script = args(m)[0]
                    if (script instanceof org.codehaus.groovy.ast.expr.MapExpression) {
                        script = ((org.codehaus.groovy.ast.expr.MapExpression) script).mapEntryExpressions
                            .find { it.keyExpression.text == 'script' }?.valueExpression
                    }
                    if (script instanceof ConstantExpression) {
                        shell(m, (String) ((ConstantExpression) script).value)
                    }
                }
                super.visitMethodCallExpression(m)
            }
        }
        module.statementBlock.visit(visitor)
        module.methods.each { it.code?.visit(visitor) }
    }

    void shell(MethodCallExpression m, String script) {
        Process p = ['sh', '-n'].execute()
        p.outputStream.withWriter { it << script }
        String err = p.errorStream.text.trim()
        if (p.waitFor() != 0) {
            problem(m, "the shell script does not parse: ${err}")
        }
    }

    // The words of the declarative structure, checked where they stand.
    static boolean isDeclarative(String n) {
        return n == 'pipeline' || n in SECTIONS || n in STAGE_SECTIONS || n in AGENTS || n in OPTIONS ||
            n in TRIGGERS || n in PARAMETERS || n in CONDITIONS || n in POST || n == 'logRotator'
    }
}

// compile compiles f with the stubs up to phase, and returns the module of f
// (null when it did not compile) with the problems found.
def compile(File f, int phase, List<String> problems) {
    CompilationUnit unit = new CompilationUnit(new CompilerConfiguration())
    SourceUnit source = unit.addSource(f)
    STUBS.eachWithIndex { String s, int i -> unit.addSource("stub${i}.groovy", s) }
    try {
        unit.compile(phase)
    } catch (CompilationFailedException ignored) {
        unit.errorCollector.errors.each { m ->
            if (m instanceof SyntaxErrorMessage) {
                problems << "${f.path}:${m.cause.line}: ${m.cause.originalMessage.trim()}"
            } else if (m instanceof ExceptionMessage) {
                problems << "${f.path}:1: ${m.cause.toString().trim()}"
            } else {
                problems << "${f.path}:1: ${m.message.trim()}"
            }
        }
        return null
    }
    return source.AST
}

int failed = 0
for (String path in args) {
    File f = new File(path)
    List<String> problems = []
    if (compile(f, Phases.CLASS_GENERATION, problems) != null) {
        Check check = new Check(file: f.path)
        ModuleNode module = compile(f, Phases.CONVERSION, problems)
        check.pipeline(module)
        check.names(module)
        check.shells(module)
        problems.addAll(check.problems)
    }
    if (problems) {
        failed++
        problems.each { println it }
    } else {
        println "ok ${f.path}"
    }
}
System.exit(failed > 0 ? 1 : 0)
